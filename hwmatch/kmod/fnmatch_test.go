package kmod

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00008086d*sv*sd*bc02sc80i*", "pci:v00008086d00002723sv00008086sd00000084bc02sc80i00", true},
		{"pci:v00008086d*sv*sd*bc02sc80i*", "pci:v00008086d00002723sv00008086sd00000084bc02sc00i00", false},
		{"usb:v2357p011Ed*dc*dsc*dp*ic*isc*ip*in*", "usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00", true},
		{"usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0100dc00", true},
		{"usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0300dc00", false},
		{"a[!0-2]b", "a3b", true},
		{"a[!0-2]b", "a1b", false},
		{"a[^0-2]b", "a1b", false},
		{"a[]]b", "a]b", true},
		{"a[]-]b", "a-b", true},
		{"a[b", "a[b", true}, // unterminated bracket is a literal '['
		{"a[b", "ab", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"of:N*T*Cfoo", "of:N/soc/bar@1T<NULL>Cfoo", true}, // '*' crosses '/' with fnmatch flags 0
		{"?", "/", true},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"x", "", false},
		{"a*b*c", "abbbbbbc", true},
		{"a*b*c", "abbbbbbd", false},
		{"*a*a*a*a*b", strings.Repeat("a", 50), false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"pci:v00008086d*": "pci:v00008086d",
		"usb:v1[0-2]":     "usb:v1",
		`a\b`:             "a",
		"plain":           "plain",
		"?x":              "",
	} {
		if got := literalPrefix(pattern); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// FuzzMatch checks the two properties the alias index relies on: Match never panics, and a
// string that matches a pattern starts with the pattern's literal prefix. For patterns made only
// of literals, '*' and '?', it also checks Match against a naive recursive reference.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"pci:v00008086d*sv*sd*bc02sc80i*", "pci:v00008086d00002723sv00008086sd00000084bc02sc80i00"},
		{"usb:v13FDp3940d0[0-2]*", "usb:v13FDp3940d0100dc00"},
		{"a[!x-z]?*\\*", "ab**"},
		{"[", "["},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := Match(pattern, s)
		if got && !strings.HasPrefix(s, literalPrefix(pattern)) {
			t.Fatalf("Match(%q, %q) is true but %q lacks the literal prefix %q", pattern, s, s, literalPrefix(pattern))
		}
		if !strings.ContainsAny(pattern, "[\\") {
			if want := referenceMatch(pattern, s); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, s, got, want)
			}
		}
	})
}

// referenceMatch is the textbook recursive definition for '*', '?' and literals.
func referenceMatch(pattern, s string) bool {
	if len(s) > 24 || len(pattern) > 24 {
		return Match(pattern, s) // keep the exponential reference on small inputs
	}
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if referenceMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && referenceMatch(pattern[1:], s[1:])
	default:
		return s != "" && s[0] == pattern[0] && referenceMatch(pattern[1:], s[1:])
	}
}

func TestNamesProduct(t *testing.T) {
	for pattern, want := range map[string]bool{
		"pci:v000010ECd00008168sv*sd*bc*sc*i*":       true,  // r8169
		"pci:v00001002d00006758sv*sd*bc*sc*i*":       true,  // radeon, Turks
		"pci:v00001002d*sv*sd*bc03sc00i00*":          false, // amdgpu's PCI_ANY_ID catch-all
		"pci:v000010DEd*sv*sd*bc03sc*i*":             false, // nouveau
		"pci:v*d*sv*sd*bc01sc06i01*":                 false, // ahci by class
		"pci:v00008086d0000[12]*sv*sd*bc*sc*i*":      false,
		"usb:v2357p011Ed*dc*dsc*dp*icFFiscFFipFFin*": true,
		"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*":       false, // usb-storage by class
		"usb:v0BDAp*d*dc*dsc*dp*ic*isc*ip*in*":       false,
		"of:N*T*Cfoo":                                false,
		"pci:v000010EC":                              false,
	} {
		if got := NamesProduct(pattern); got != want {
			t.Errorf("NamesProduct(%q) = %v", pattern, got)
		}
	}
}
