package gpt

import (
	"fmt"
	"github.com/kairos-io/kairos-firmware/manifests/strverscmp"
	"strings"
)

// Partitions are the partitions systemd-sysext uses from a DDI: dissect_image() in
// src/shared/dissect-image.c with sysext's flags (src/sysext/sysext.c: GENERIC_ROOT,
// REQUIRE_ROOT, USR_NO_ROOT, MOUNT_ROOT_ONLY). systemd mounts Root at the image root and Usr
// on its /usr; without Root, a tmpfs root gets Usr on /usr. Verity siblings are reported for
// integrity checking (package manifests/verity); this package does not verify them.
type Partitions struct {
	// Arch is the architecture of the chosen partitions ("" for a generic Linux partition).
	Arch string
	// Root is the root partition (or the single generic Linux partition), nil if absent.
	Root *Partition
	// RootVerity and RootVeritySig are Root's dm-verity hash and signature partitions.
	RootVerity, RootVeritySig *Partition
	// Usr is the /usr partition, nil if absent.
	Usr *Partition
	// UsrVerity and UsrVeritySig are Usr's dm-verity hash and signature partitions.
	UsrVerity, UsrVeritySig *Partition
	// Generic says Root is a generic Linux partition (no root or /usr partition exists).
	Generic bool
}

// FS returns the partition holding the image's top filesystem and its type name: Root
// ("root-x86-64", or "linux-generic") if present, else Usr.
func (p *Partitions) FS() (*Partition, string) {
	switch {
	case p.Generic:
		return p.Root, "linux-generic"
	case p.Root != nil:
		return p.Root, Type{Root, p.Arch}.String()
	}
	return p.Usr, Type{Usr, p.Arch}.String()
}

// archRank orders architectures as systemd does (compare_arch in dissect-image.c): the native
// one, then the secondary one, then any other.
func archRank(arch, native string) int {
	switch {
	case arch == native:
		return 2
	case arch != "" && arch == SecondaryArch(native):
		return 1
	}
	return 0
}

// Sysext picks the partitions systemd-sysext would use on a host of architecture arch
// (systemd's name, see HostArch). Entries with the no-auto attribute (bit 63) are ignored,
// as systemd ignores them. For each designator and architecture the first entry wins, except
// that among root (or /usr) entries the newest label by systemd's version compare wins (A/B
// updates). Then, in this order:
//  1. root: the native architecture's, else the secondary's, else another's (the newest
//     label, then the first, among other architectures); its verity siblings are those of
//     the same architecture;
//  2. a root-verity or root-verity-sig partition without a root partition is refused, and so
//     is a root-verity-sig without root-verity;
//  3. usr: of the root's architecture when there is a root, else chosen like root; the
//     same two checks for usr-verity and usr-verity-sig;
//  4. with neither root nor usr: a single generic Linux partition is the root; several are
//     ambiguous; none is refused (REQUIRE_ROOT with USR_NO_ROOT);
//  5. root-verity with usr-verity is refused (one verity partition per image), and so is
//     root-verity with a separate usr partition.
func (t *Table) Sysext(arch string) (*Partitions, error) {
	found := map[slot]*Partition{}
	var archOrder []string // architectures in table order
	var generic []*Partition
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Type == LinuxGeneric {
			if p.Attributes&FlagNoAuto == 0 {
				generic = append(generic, p)
			}
			continue
		}
		typ, ok := LookupType(p.Type)
		if !ok || p.Attributes&FlagNoAuto != 0 {
			continue
		}
		s := slot{typ.Designator, typ.Arch}
		if old := found[s]; old != nil {
			versioned := typ.Designator == Root || typ.Designator == Usr
			if !versioned || strverscmp.Compare(p.Name, old.Name) <= 0 {
				continue
			}
		}
		found[s] = p
		if !contains(archOrder, typ.Arch) {
			archOrder = append(archOrder, typ.Arch)
		}
	}
	// best returns the architecture systemd would choose for designator d.
	best := func(d Designator) string {
		chosen := ""
		for _, a := range archOrder {
			p := found[slot{d, a}]
			if p == nil {
				continue
			}
			if chosen == "" {
				chosen = a
				continue
			}
			rc, ra := archRank(chosen, arch), archRank(a, arch)
			if ra > rc || (ra == rc && ra == 0 && strverscmp.Compare(p.Name, found[slot{d, chosen}].Name) > 0) {
				chosen = a
			}
		}
		return chosen
	}
	out := &Partitions{}
	// 1, 2: root and its verity siblings.
	if a := best(Root); a != "" {
		out.Arch = a
		out.Root, out.RootVerity, out.RootVeritySig = found[slot{Root, a}], found[slot{RootVerity, a}], found[slot{RootVeritySig, a}]
	} else if p := anyOf(found, RootVerity, RootVeritySig); p != nil {
		typ, _ := LookupType(p.Type)
		return nil, fmt.Errorf("%w: partition %d is %s but there is no root-%s partition", ErrInvalid, p.Number, typ, typ.Arch)
	}
	if out.RootVeritySig != nil && out.RootVerity == nil {
		return nil, fmt.Errorf("%w: partition %d is %s but there is no root-%s-verity partition", ErrInvalid, out.RootVeritySig.Number, Type{RootVeritySig, out.Arch}, out.Arch)
	}
	// 3: usr, of the root's architecture if there is a root.
	ua := out.Arch
	if out.Root == nil {
		ua = best(Usr)
	}
	if p := found[slot{Usr, ua}]; p != nil {
		out.Arch = ua
		out.Usr, out.UsrVerity, out.UsrVeritySig = p, found[slot{UsrVerity, ua}], found[slot{UsrVeritySig, ua}]
	} else {
		stray := anyOf(found, UsrVerity, UsrVeritySig)
		if out.Root != nil {
			stray = firstOf(found[slot{UsrVerity, ua}], found[slot{UsrVeritySig, ua}])
		}
		if stray != nil {
			typ, _ := LookupType(stray.Type)
			return nil, fmt.Errorf("%w: partition %d is %s but there is no usr-%s partition", ErrInvalid, stray.Number, typ, typ.Arch)
		}
	}
	if out.UsrVeritySig != nil && out.UsrVerity == nil {
		return nil, fmt.Errorf("%w: partition %d is %s but there is no usr-%s-verity partition", ErrInvalid, out.UsrVeritySig.Number, Type{UsrVeritySig, out.Arch}, out.Arch)
	}
	// 4: the generic fallback, or nothing usable.
	if out.Root == nil && out.Usr == nil {
		switch len(generic) {
		case 0:
			return nil, fmt.Errorf("%w: no root or usr partition (and no generic Linux partition) among %s", ErrInvalid, t.describe())
		case 1:
			out.Root, out.Generic = generic[0], true
		default:
			return nil, fmt.Errorf("%w: no root or usr partition, and %d generic Linux partitions (%d and %d): ambiguous", ErrInvalid, len(generic), generic[0].Number, generic[1].Number)
		}
	}
	// 5: one verity partition per image, and verity root only without a separate usr.
	if out.RootVerity != nil && out.UsrVerity != nil {
		return nil, fmt.Errorf("%w: both root-verity (partition %d) and usr-verity (partition %d): systemd supports one verity partition per image", ErrInvalid, out.RootVerity.Number, out.UsrVerity.Number)
	}
	if out.RootVerity != nil && out.Usr != nil {
		return nil, fmt.Errorf("%w: root-verity (partition %d) with a separate usr partition (%d): systemd refuses a verity root with a split /usr", ErrInvalid, out.RootVerity.Number, out.Usr.Number)
	}
	return out, nil
}

// slot is where dissect_image() keeps one partition: a designator for an architecture.
type slot struct {
	d    Designator
	arch string
}

// anyOf returns the found partition with the lowest number among the designators.
func anyOf(found map[slot]*Partition, ds ...Designator) *Partition {
	var ps []*Partition
	for s, p := range found {
		if contains(ds, s.d) {
			ps = append(ps, p)
		}
	}
	return firstOf(ps...)
}

// firstOf returns the non-nil partition with the lowest number.
func firstOf(ps ...*Partition) *Partition {
	var first *Partition
	for _, p := range ps {
		if p != nil && (first == nil || p.Number < first.Number) {
			first = p
		}
	}
	return first
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// describe lists the partitions for an error message.
func (t *Table) describe() string {
	if len(t.Partitions) == 0 {
		return "no partitions"
	}
	var parts []string
	for _, p := range t.Partitions {
		name := p.Type.String()
		if typ, ok := LookupType(p.Type); ok {
			name = typ.String()
		}
		if p.Attributes&FlagNoAuto != 0 {
			name += " (no-auto)"
		}
		parts = append(parts, fmt.Sprintf("%d: %s", p.Number, name))
	}
	return "partitions " + strings.Join(parts, ", ")
}
