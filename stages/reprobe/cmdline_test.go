package reprobe

import (
	"reflect"
	"testing"
)

func TestParseIP(t *testing.T) {
	for _, tc := range []struct {
		value, iface string
		asks         bool
	}{
		{"dhcp", "", true},
		{"on", "", true},
		{"ibft", "", true},
		{"off", "", false},
		{"none", "", false},
		{"eth0:dhcp", "eth0", true},
		{"eth0:dhcp6", "eth0", true},
		{"eth0:dhcp:9000", "eth0", true},
		// dracut sets this MAC address on the interface: it does not name one.
		{"lan1:dhcp:1500:52:54:00:12:34:57", "lan1", true},
		{"192.168.1.10::192.168.1.1:255.255.255.0:node1:eth1:none", "eth1", true},
		{"192.168.1.10::192.168.1.1:255.255.255.0:node1:eth1:off:9000:52:54:00:12:34:57", "eth1", true},
		{"[2001:db8::2]::[2001:db8::1]:64:node1:eth0:none", "eth0", true},
		{"192.168.1.10::192.168.1.1:255.255.255.0::eth0:none:10.0.0.53", "eth0", true},
		// The kernel's own form (nfsroot.rst): device in the sixth field.
		{":::::eth0:dhcp", "eth0", true},
		{"::::::dhcp", "", true},
		{"::::::off", "", false},
	} {
		iface, asks := parseIP(tc.value)
		if iface != tc.iface || asks != tc.asks {
			t.Errorf("ip=%s: interface %q, asks %v; want %q, %v", tc.value, iface, asks, tc.iface, tc.asks)
		}
	}
}

func TestParseNetCmdline(t *testing.T) {
	req := parseNetCmdline(`BOOT_IMAGE=/vmlinuz "root=nfs:10.0.0.1:/srv/root" ip=dhcp ifname=lan0:52:54:00:AA:BB:CC BOOTIF=01-52-54-00-12-34-57 quiet`)
	want := netRequest{
		asked: "root=nfs:10.0.0.1:/srv/root",
		names: []netRef{{"lan0", "ifname=lan0:52:54:00:AA:BB:CC"}},
		macs:  []netRef{{"52:54:00:aa:bb:cc", "ifname=lan0:52:54:00:AA:BB:CC"}, {"52:54:00:12:34:57", "BOOTIF=01-52-54-00-12-34-57"}},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got  %+v\nwant %+v", req, want)
	}
	if req := parseNetCmdline("ip=dhcp BOOTIF=01-52-54-00-12-34-57 rd.bootif=0"); len(req.macs) != 0 {
		t.Errorf("rd.bootif=0 must drop BOOTIF: %+v", req)
	}
	if req := parseNetCmdline("root=LABEL=COS_ACTIVE rd.neednet=0 ifname=lan0:52:54:00:aa:bb:cc"); req.asked != "" {
		t.Errorf("nothing asks for the network: %+v", req)
	}
}
