package strverscmp

import (
	"reflect"
	"sort"
	"testing"
)

func TestDocumentedOrder(t *testing.T) {
	// systemd's documented order (strverscmp_improved), oldest first
	order := []string{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"}
	for i := range order {
		for j := range order {
			want := cmpInt(i, j)
			if got := Compare(order[i], order[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"fw_1.10", "fw_1.2", 1}, {"00123", "123", 0}, {"", "", 0}, {"", "1", -1}, {"1~", "1", -1},
		{"abc", "abcde", -1}, {"1_a", "1a", 0}, {"root-x86-64", "root-x86-64", 0}, {"~", "", -1},
	} {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestOrderSysextStacksBy(t *testing.T) {
	// Oldest first: the order of strverscmp_improved()'s comment in
	// src/fundamental/string-util-fundamental.c, and more.
	ordered := []string{
		"~1", "", "ab", "abb", "abc", "0001", "002", "12", "122", "122.1", "122.9",
		"123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1",
	}
	for i := range ordered {
		for j := range ordered {
			want := cmpInt(i, j)
			if got := Compare(ordered[i], ordered[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"123_a", "123a"}, {"0123", "123"}, {"fw_10", "fw10"}} {
		if Compare(eq[0], eq[1]) != 0 {
			t.Errorf("%q and %q should compare equal", eq[0], eq[1])
		}
	}
	names := []string{"fw-10", "fw-9", "fw-9.1", "extra", "fw-10~rc1"}
	sort.Slice(names, func(a, b int) bool { return Compare(names[a], names[b]) < 0 })
	if want := []string{"extra", "fw-9", "fw-9.1", "fw-10~rc1", "fw-10"}; !reflect.DeepEqual(names, want) {
		t.Errorf("sorted %q, want %q", names, want)
	}
}
