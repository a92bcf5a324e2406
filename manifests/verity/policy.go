package verity

import (
	"fmt"
)

// Policies, as config.SignaturePolicy spells them (firmware.signatures).
const (
	PolicyAuto     = "auto"
	PolicyRequired = "required"
	PolicyIgnore   = "ignore"
)

// The image policies Kairos gives systemd-sysext, which Decide mirrors so that the initramfs
// shows firmware only from images systemd will merge after the pivot.
const (
	// UKIImagePolicy is the Trusted Boot policy since kairos#4444 (it was
	// root=verity+signed+absent, which let an image whose signature failed fall back to
	// unsigned verity: kairos#4425).
	UKIImagePolicy = "root=signed+absent:usr=signed+absent"
	// NonUKIImagePolicy is the policy of the systemd-sysext drop-in kairos-init installs for
	// GRUB boots.
	NonUKIImagePolicy = "root=verity+absent:usr=verity+absent"
)

// Refusal is the error Decide returns for an image the policy does not accept.
type Refusal struct {
	Policy string // auto, required or ignore
	UKI    bool
	Reason string
	Err    error // the underlying verity or signature error, if any
}

func (r *Refusal) Error() string {
	boot := "a non-UKI boot"
	if r.UKI {
		boot = "a UKI boot"
	}
	return fmt.Sprintf("refused by signatures: %s on %s: %s", r.Policy, boot, r.Reason)
}

// Unwrap returns the verity or signature error behind the refusal.
func (r *Refusal) Unwrap() error { return r.Err }

// Decide says whether an image with this evidence may be used under the signature policy
// (firmware.signatures) on a UKI boot (/run/cos/uki_boot_mode exists) or not; nil means
// accepted, a *Refusal says why not. docs/images.md ("Integrity") has the table.
//
//   - An image whose verity check failed (no usable root hash, hash tree or data not matching,
//     unreadable signature partition) is refused under every policy: systemd would not set it
//     up, or dm-verity would fail its reads.
//   - ignore: everything else is accepted; signatures are not looked at (as Kairos'
//     extensions.ignore_signatures, whose image policy also accepts unprotected images).
//   - required, and auto on a UKI boot: only a DDI with verity and a signature verified by a
//     trusted certificate (UKIImagePolicy; verity without a valid signature never passes,
//     kairos#4425). Directories and bare file systems cannot be signed and are refused.
//   - auto on a non-UKI boot: what is there is checked, nothing is demanded. Directories, bare
//     file systems (hadron-firmware's unsigned raw images, a user's squashfs) and DDIs without
//     verity are accepted; a DDI's verity must verify, and a signature it carries must verify
//     too, because systemd then fails to set the image up (ENOKEY) and immucore skips it
//     (kairos#5004). Kairos' own drop-in for systemd-sysext on GRUB boots
//     (NonUKIImagePolicy) is stricter and refuses unprotected images after the pivot; their
//     firmware stays visible through firmware_class.path, and the report warns (see
//     docs/images.md, "Integrity").
func Decide(policy string, ukiBoot bool, ev Evidence) error {
	refuse := func(reason string, err error) error {
		return &Refusal{Policy: policy, UKI: ukiBoot, Reason: reason, Err: err}
	}
	switch policy {
	case PolicyAuto, PolicyRequired, PolicyIgnore:
	default:
		return fmt.Errorf("signatures: unknown policy %q, want %s, %s or %s", policy, PolicyAuto, PolicyRequired, PolicyIgnore)
	}
	switch ev.Kind {
	case KindDirectory, KindFilesystem, KindDDI:
	default:
		return refuse(fmt.Sprintf("unknown image kind %q", ev.Kind), nil)
	}
	ddi := ev.Kind == KindDDI
	if ddi && ev.Verity && ev.VerityErr != nil {
		return refuse(fmt.Sprintf("the image fails its integrity check: %v", ev.VerityErr), ev.VerityErr)
	}
	if policy == PolicyIgnore {
		return nil
	}

	signedOnly := policy == PolicyRequired || ukiBoot
	if signedOnly {
		why := "signed images only (like " + UKIImagePolicy + ")"
		switch {
		case ev.Kind == KindDirectory:
			return refuse("a directory image cannot be signed; "+why, nil)
		case ev.Kind == KindFilesystem:
			return refuse("a bare file system image has neither verity nor a signature; "+why, nil)
		case !ev.Verity:
			return refuse("the image has no verity hash partition; "+why, nil)
		case !ev.Signed:
			return refuse("the image has verity but no signature, and verity without a signature never passes a signed-only policy (kairos#4425); "+why, nil)
		case !ev.SignatureOK():
			return refuse(fmt.Sprintf("the signature did not verify: %v; %s", ev.SignatureErr, why), ev.SignatureErr)
		}
		return nil
	}

	// auto on a non-UKI boot.
	if ddi && ev.Signed && !ev.SignatureOK() {
		return refuse(fmt.Sprintf("the image is signed but the signature did not verify: %v; systemd would fail to set it up (ENOKEY) and immucore skips such an image (kairos#5004)", ev.SignatureErr), ev.SignatureErr)
	}
	return nil
}
