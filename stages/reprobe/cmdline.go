package reprobe

import (
	"github.com/kairos-io/kairos-firmware/kcmdline"
	"net"
	"strings"
)

// The network the kernel command line asks for in the initramfs, in dracut's terms
// (dracut.cmdline(7), modules.d/40network and 95iscsi, 95nfs) and the kernel's own ip= and
// nfsroot= (https://github.com/torvalds/linux/blob/v6.1/Documentation/admin-guide/nfs/nfsroot.rst).

// netRequest is what the command line says about the network.
type netRequest struct {
	// asked is the first parameter that brings the network up in the initramfs or puts the
	// root on it ("ip=dhcp", "netroot=iscsi:..."); "" when none does.
	asked string
	// names and macs identify the interfaces it names, each with the parameter that named it.
	names []netRef
	macs  []netRef
}

// netRef is an interface name or a MAC address and the parameter it came from.
type netRef struct {
	value, by string
}

// autoconfWords are ip= autoconfiguration methods, dracut's and the kernel's.
var autoconfWords = map[string]bool{
	"off": true, "none": true, "on": true, "any": true, "dhcp": true, "dhcp6": true, "auto6": true,
	"either6": true, "link6": true, "ibft": true, "single-dhcp": true, "bootp": true, "rarp": true,
	"both": true,
}

// parseNetCmdline reads the parameters that concern the network.
func parseNetCmdline(cmdline string) netRequest {
	var req netRequest
	ask := func(token string) {
		if req.asked == "" {
			req.asked = token
		}
	}
	bootif := true
	var bootifMAC netRef
	for _, token := range splitCmdline(cmdline) {
		key, value, _ := strings.Cut(token, "=")
		key, value = strings.Trim(key, `"`), strings.Trim(value, `"`)
		shown := key + "=" + value
		switch {
		case key == "ip":
			iface, asks := parseIP(value)
			if asks {
				ask(shown)
			}
			if iface != "" {
				req.names = append(req.names, netRef{iface, shown})
			}
		case key == "ifname":
			// ifname=<interface>:<MAC>
			if name, mac, ok := strings.Cut(value, ":"); ok {
				req.names = append(req.names, netRef{name, shown})
				if m := normalizeMAC(strings.Split(mac, ":")); m != "" {
					req.macs = append(req.macs, netRef{m, shown})
				}
			}
		case key == "BOOTIF":
			// PXELINUX's IPAPPEND 2: BOOTIF=01-52-54-00-12-34-56, the ARP hardware type first.
			groups := strings.Split(value, "-")
			if len(groups) == 7 {
				groups = groups[1:]
			}
			if m := normalizeMAC(groups); m != "" {
				bootifMAC = netRef{m, shown}
			}
		case key == "rd.bootif":
			bootif = value != "0"
		case key == "netroot", key == "nfsroot",
			strings.HasPrefix(key, "rd.iscsi."), key == "iscsi_initiator", strings.HasPrefix(key, "iscsi_target_"):
			ask(shown)
		case key == "root" && isNetworkRoot(value):
			ask(shown)
		case key == "rd.neednet" && value == "1":
			ask(shown)
		}
	}
	if bootif && bootifMAC.value != "" {
		req.macs = append(req.macs, bootifMAC)
	}
	return req
}

// isNetworkRoot reports whether root= puts the root file system on the network.
func isNetworkRoot(v string) bool {
	if v == "/dev/nfs" || v == "dhcp" || v == "dhcp6" {
		return true
	}
	for _, prefix := range []string{"nfs:", "nfs4:", "iscsi:", "nbd:", "cifs:", "dhcp:"} {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

// parseIP reads one ip= value in any of its forms and returns the interface it names, and
// whether it brings a network up at all (ip=off and ip=none do not):
//
//	ip={dhcp|on|any|dhcp6|auto6|either6|link6|ibft|off|none|...}
//	ip=<interface>:<autoconf>[:[<mtu>][:<macaddr>]]
//	ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:<autoconf>[:[<mtu>][:<macaddr>]]
//
// IPv6 addresses are written in brackets, so colons inside brackets do not split fields. The
// <macaddr> of an ip= is an address dracut sets on the interface, not one that finds it.
func parseIP(v string) (iface string, asks bool) {
	fields := splitIPFields(v)
	switch {
	case len(fields) == 1:
		return "", v != "off" && v != "none" && v != ""
	case autoconfWords[fields[1]] && net.ParseIP(strings.Trim(fields[0], "[]")) == nil:
		return fields[0], fields[1] != "off" && fields[1] != "none"
	}
	field := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return ""
	}
	autoconf := field(6)
	// A static address with autoconf none/off configures the interface all the same.
	asks = field(0) != "" || (autoconf != "" && autoconf != "off" && autoconf != "none")
	return field(5), asks
}

// splitIPFields splits at colons outside brackets.
func splitIPFields(v string) []string {
	var fields []string
	depth, start := 0, 0
	for i, r := range v {
		switch r {
		case '[':
			depth++
		case ']':
			depth = max(depth-1, 0)
		case ':':
			if depth == 0 {
				fields = append(fields, v[start:i])
				start = i + 1
			}
		}
	}
	return append(fields, v[start:])
}

// normalizeMAC returns the address of exactly six two-digit hex groups, lower case and colon
// separated, or "".
func normalizeMAC(groups []string) string {
	if len(groups) != 6 {
		return ""
	}
	lower := make([]string, 0, 6)
	for _, g := range groups {
		g = strings.ToLower(g)
		if len(g) != 2 || strings.Trim(g, "0123456789abcdef") != "" {
			return ""
		}
		lower = append(lower, g)
	}
	return strings.Join(lower, ":")
}

// splitCmdline splits the command line at white space outside double quotes, as the kernel does.
func splitCmdline(s string) []string {
	var tokens []string
	for _, t := range kcmdline.Split(s) {
		tokens = append(tokens, t.Text)
	}
	return tokens
}
