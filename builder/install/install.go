// Package install puts a system extension image into the Kairos extension store and enables
// it, laid out as `kairos-agent sysext install` followed by `kairos-agent sysext enable` leave
// it: the image flat in /var/lib/kairos/extensions/<file>.raw and an enable link
// /var/lib/kairos/extensions/<profile>/<file>.raw pointing at it by its absolute path. Images
// come from a file, an http(s) URL or an OCI registry; each is verified and committed
// atomically, so a failed install leaves the store as it was. docs/install.md.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"time"

	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// Profiles are the enable directories of the store, as kairos-agent's sysext --active,
// --passive, --recovery and --common name them; immucore links the boot state's one and
// common/ into /run/extensions.
var Profiles = []string{"active", "passive", "recovery", "common"}

// DefaultProfile enables an image in every boot state: firmware is needed in all of them.
const DefaultProfile = "common"

// DefaultStall is how long a download may go without receiving a byte before it is abandoned.
const DefaultStall = 60 * time.Second

// Options configure an installation.
type Options struct {
	// Root is the real directory that stands for "/" (--root).
	Root string
	// Profile is the enable directory: one of Profiles. Empty means DefaultProfile.
	Profile string
	// SHA256 is the expected sha256 of the image file in hex, or empty.
	SHA256 string
	// Catalog gives the expected sha256 by file name, or is nil.
	Catalog *Catalog
	// Client fetches http(s) and registry URLs. Nil means NewClient().
	Client *http.Client
	// Stall abandons a download that receives nothing for this long. Zero means DefaultStall.
	Stall time.Duration
	// Log receives progress and messages (stderr). Nil discards them.
	Log io.Writer
	// TTY draws a progress bar on Log instead of writing log lines.
	TTY bool
}

// Result is one installed image.
type Result struct {
	// URI is the URI as given.
	URI string `json:"uri"`
	// File is the image in the store, as the installed system sees it.
	File string `json:"file"`
	// Link is the enable link, as the installed system sees it.
	Link string `json:"link"`
	// SHA256 is the image file's sha256 in hex.
	SHA256 string `json:"sha256"`
	// Bytes is the image file's size.
	Bytes int64 `json:"bytes"`
	// Unchanged is true when neither the image nor its link had to be written.
	Unchanged bool `json:"unchanged"`
}

// fetcher writes one image's content into the sink and returns the image's file name.
type fetcher interface {
	fetch(ctx context.Context, dst *sink) (string, error)
}

// Install fetches the image at uri, verifies it and commits it to the store under
// opts.Root, then enables it for opts.Profile. On any error before the commit the store is
// left as it was (a directory the install created is removed again).
func Install(ctx context.Context, uri string, opts Options) (*Result, error) {
	profile := opts.Profile
	if profile == "" {
		profile = DefaultProfile
	}
	if !validProfile(profile) {
		return nil, fmt.Errorf("profile %q: want active, passive, recovery or common", profile)
	}
	src, err := parseSource(uri, &opts)
	if err != nil {
		return nil, err
	}
	st, err := openStore(opts.Root)
	if err != nil {
		return nil, err
	}
	res, err := installInto(ctx, st, src, profile, &opts)
	if err != nil {
		st.abandon()
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	res.URI = uri
	return res, nil
}

func installInto(ctx context.Context, st *store, src fetcher, profile string, opts *Options) (*Result, error) {
	tmp, err := st.temp()
	if err != nil {
		return nil, err
	}
	defer tmp.discard()
	name, err := src.fetch(ctx, tmp)
	if err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := tmp.finish(); err != nil {
		return nil, err
	}
	sum := tmp.sum()
	if err := verify(name, sum, opts); err != nil {
		return nil, err
	}
	sameImage, err := st.commit(tmp, name)
	if err != nil {
		return nil, err
	}
	sameLink, err := st.enable(name, profile)
	if err != nil {
		return nil, err
	}
	return &Result{
		File:      path.Join(plan.StoreRoot, name),
		Link:      path.Join(plan.StoreRoot, profile, name),
		SHA256:    sum,
		Bytes:     tmp.n,
		Unchanged: sameImage && sameLink,
	}, nil
}

// verify checks the image's sha256 against --sha256 or the catalog's entry for name.
func verify(name, sum string, opts *Options) error {
	want, from := opts.SHA256, "--sha256"
	if want == "" && opts.Catalog != nil {
		var err error
		if want, err = opts.Catalog.Lookup(name); err != nil {
			return err
		}
		from = "catalog " + opts.Catalog.Path
	}
	if want == "" {
		return nil
	}
	if want != sum {
		return fmt.Errorf("%w: %s has sha256 %s, %s wants %s; nothing was written", ErrChecksum, name, sum, from, want)
	}
	return nil
}

// ErrChecksum is wrapped by every checksum mismatch.
var ErrChecksum = errors.New("checksum mismatch")

func validProfile(p string) bool {
	for _, q := range Profiles {
		if p == q {
			return true
		}
	}
	return false
}
