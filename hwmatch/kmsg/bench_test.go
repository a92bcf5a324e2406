package kmsg

import (
	"bytes"
	"fmt"
	"testing"
)

// syntheticLog builds about size bytes of kernel log: mostly unrelated chatter, every tenth
// line a firmware or probe line, in dmesg, /dev/kmsg and journal formats.
func syntheticLog(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		ts := float64(i) / 1000
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "[%12.6f] rtw_8821au 1-%d:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n", ts, i%7)
		case 3:
			fmt.Fprintf(&b, "4,%d,%d,-;iwlwifi 0000:00:%02x.3: firmware: failed to load iwlwifi-so-a0-gf-a0-%d.ucode (-2)\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:%02x.3\n", i, i*1000, i%32, i%80, i%32)
		case 6:
			fmt.Fprintf(&b, "Sep 04 09:19:13 localhost kernel: rtw_8821au 1-%d:1.0: probe with driver rtw_8821au failed with error -22\n", i%7)
		case 8:
			fmt.Fprintf(&b, "6,%d,%d,-;usb 1-%d: New USB device found, idVendor=2357, idProduct=011e, bcdDevice= 2.00\n SUBSYSTEM=usb\n DEVICE=c189:%d\n", i, i*1000, i%7, i%128)
		default:
			fmt.Fprintf(&b, "[%12.6f] EXT4-fs (vda): mounted filesystem 00000000-0000-0000-0000-000000000000 r/w without journal. Quota mode: none.\n", ts)
		}
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	data := syntheticLog(1 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		log, err := Parse(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if len(log.Events) == 0 {
			b.Fatal("no events in the synthetic log")
		}
	}
}
