package verity

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecideTable is the table of docs/images.md ("Integrity"): every image kind under every
// policy on both boots, accepted or refused with the reason.
func TestDecideTable(t *testing.T) {
	signer := &Certificate{Path: "/run/verity.d/db.crt", Cert: goCert(t, "db", 1)}
	untrusted := fmt.Errorf("%w: signed by someone else", ErrUntrustedSigner)
	corrupt := fmt.Errorf("%w: root hash mismatch", ErrCorrupt)
	kinds := []struct {
		name string
		ev   Evidence
	}{
		{"directory", Evidence{Kind: KindDirectory}},
		{"bare erofs/squashfs", Evidence{Kind: KindFilesystem}},
		{"DDI without verity", Evidence{Kind: KindDDI}},
		{"DDI verity, unsigned", Evidence{Kind: KindDDI, Verity: true}},
		{"DDI verity, signed, verified", Evidence{Kind: KindDDI, Verity: true, Signed: true, Signer: signer}},
		{"DDI verity, signed, not verified", Evidence{Kind: KindDDI, Verity: true, Signed: true, SignatureErr: untrusted}},
		{"DDI verity failed", Evidence{Kind: KindDDI, Verity: true, VerityErr: corrupt, Signed: true, Signer: signer}},
	}
	const ok = ""
	// want[kind][column], columns: auto non-UKI, auto UKI, required (either), ignore (either).
	want := map[string][4]string{
		"directory":                        {ok, "a directory image cannot be signed", "a directory image cannot be signed", ok},
		"bare erofs/squashfs":              {ok, "a bare file system image has neither verity nor a signature", "neither verity nor a signature", ok},
		"DDI without verity":               {ok, "no verity hash partition; signed images only", "no verity hash partition", ok},
		"DDI verity, unsigned":             {ok, "kairos#4425", "kairos#4425", ok},
		"DDI verity, signed, verified":     {ok, ok, ok, ok},
		"DDI verity, signed, not verified": {"kairos#5004", "the signature did not verify", "the signature did not verify", ok},
		"DDI verity failed":                {"fails its integrity check", "fails its integrity check", "fails its integrity check", "fails its integrity check"},
	}
	for _, k := range kinds {
		for col, c := range []struct {
			policy string
			ukis   []bool
		}{{PolicyAuto, []bool{false}}, {PolicyAuto, []bool{true}}, {PolicyRequired, []bool{false, true}}, {PolicyIgnore, []bool{false, true}}} {
			for _, uki := range c.ukis {
				err := Decide(c.policy, uki, k.ev)
				w := want[k.name][col]
				switch {
				case w == ok && err != nil:
					t.Errorf("%s, %s, uki=%v: refused: %v", k.name, c.policy, uki, err)
				case w != ok && (err == nil || !strings.Contains(err.Error(), w)):
					t.Errorf("%s, %s, uki=%v: %v, want a refusal saying %q", k.name, c.policy, uki, err, w)
				}
				var r *Refusal
				if err != nil && (!errors.As(err, &r) || r.Policy != c.policy || r.UKI != uki) {
					t.Errorf("%s, %s, uki=%v: not a *Refusal for this policy: %#v", k.name, c.policy, uki, err)
				}
			}
		}
	}
	// The underlying errors stay reachable.
	if err := Decide(PolicyRequired, false, kinds[5].ev); !errors.Is(err, ErrUntrustedSigner) {
		t.Errorf("unwrap: %v", err)
	}
	if err := Decide(PolicyIgnore, false, kinds[6].ev); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unwrap: %v", err)
	}
}

func TestDecideInputs(t *testing.T) {
	if err := Decide("strict", false, Evidence{Kind: KindDDI}); err == nil || !strings.Contains(err.Error(), `unknown policy "strict", want auto, required or ignore`) {
		t.Errorf("unknown policy: %v", err)
	}
	if err := Decide(PolicyIgnore, false, Evidence{}); err == nil || !strings.Contains(err.Error(), `unknown image kind ""`) {
		t.Errorf("unknown kind: %v", err)
	}
	for format, kind := range map[string]Kind{"directory": KindDirectory, "erofs": KindFilesystem, "squashfs": KindFilesystem, "gpt": KindDDI, "ext4": ""} {
		if got := KindOf(format); got != kind {
			t.Errorf("KindOf(%q) = %q, want %q", format, got, kind)
		}
	}
	r := &Refusal{Policy: PolicyAuto, UKI: true, Reason: "because"}
	if r.Error() != "refused by signatures: auto on a UKI boot: because" {
		t.Errorf("Refusal.Error() = %q", r.Error())
	}
}
