module github.com/kairos-io/kairos-firmware

go 1.26.8

require (
	github.com/CalebQ42/squashfs v1.4.1
	github.com/jaypipes/ghw v0.27.0
	github.com/jaypipes/pcidb v1.1.1
	github.com/klauspost/compress v1.18.0
	github.com/pierrec/lz4/v4 v4.1.22
	github.com/twpayne/go-vfs/v4 v4.3.0
	github.com/ulikunitz/xz v0.5.15
	golang.org/x/sys v0.25.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/go-ole/go-ole v1.2.6 // indirect
	github.com/mikelolasagasti/xz v1.0.1 // indirect
	github.com/rasky/go-lzo v0.0.0-20200203143853-96a758eda86e // indirect
	github.com/yusufpapurcu/wmi v1.2.4 // indirect
	howett.net/plist v1.0.2-0.20250314012144-ee69052608d9 // indirect
)
