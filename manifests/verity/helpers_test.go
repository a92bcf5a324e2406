package verity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// formatTree builds a hash device the way `veritysetup format` does (superblock, then the
// levels top first, each block of entries zero padded), bottom up from the data: a test-only
// writer, checked against veritysetup itself in TestTreeMatchesVeritysetup.
func formatTree(t testing.TB, data []byte, dbs, hbs uint32, salt []byte) (dev, root []byte) {
	t.Helper()
	if len(data)%int(dbs) != 0 || len(data) == 0 {
		t.Fatalf("formatTree: %d bytes is not a positive multiple of %d", len(data), dbs)
	}
	h := func(b []byte) []byte {
		s := sha256.New()
		s.Write(salt)
		s.Write(b)
		return s.Sum(nil)
	}
	// nodes: the blocks of the level below, hashed into the next level up.
	var nodes [][]byte
	for off := 0; off < len(data); off += int(dbs) {
		nodes = append(nodes, data[off:off+int(dbs)])
	}
	var levels [][]byte // levels[0] = leaves (hashes of data blocks), each level's blocks concatenated
	for len(nodes) > 1 {
		var level []byte
		var blocks [][]byte
		block := make([]byte, 0, hbs)
		for _, n := range nodes {
			block = append(block, h(n)...)
			if len(block) == int(hbs) {
				blocks = append(blocks, block)
				block = make([]byte, 0, hbs)
			}
		}
		if len(block) > 0 {
			blocks = append(blocks, append(block, make([]byte, int(hbs)-len(block))...))
		}
		for _, b := range blocks {
			level = append(level, b...)
		}
		levels = append(levels, level)
		nodes = blocks
	}
	root = h(nodes[0])
	sb := superblockBytes(1, 1, "sha256", dbs, hbs, uint64(len(data))/uint64(dbs), salt)
	off := (SuperblockSize + int(hbs) - 1) / int(hbs) * int(hbs)
	dev = append(sb, make([]byte, off-len(sb))...)
	for i := len(levels) - 1; i >= 0; i-- {
		dev = append(dev, levels[i]...)
	}
	return dev, root
}

// superblockBytes writes a struct verity_sb.
func superblockBytes(version, hashType uint32, alg string, dbs, hbs uint32, blocks uint64, salt []byte) []byte {
	b := make([]byte, SuperblockSize)
	copy(b, superblockMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], hashType)
	copy(b[16:32], []byte{0x6b, 0x17, 0xdf, 0x78, 0x91, 0x61, 0x48, 0xa4, 0x9f, 0x4f, 0x3c, 0xc7, 0xe0, 0x70, 0xe5, 0xae})
	copy(b[32:64], alg)
	le.PutUint32(b[64:], dbs)
	le.PutUint32(b[68:], hbs)
	le.PutUint64(b[72:], blocks)
	le.PutUint16(b[80:], uint16(len(salt)))
	copy(b[88:], salt)
	return b
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// flip returns a copy of b with one bit of byte i inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// run runs a program, failing the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

// veritysetupFormat runs `veritysetup format` on the data file and returns the hash device
// path and the root hash it prints.
func veritysetupFormat(t testing.TB, dataPath string, args ...string) (hashPath string, root []byte) {
	t.Helper()
	tool := testkernel.Tool(t, "veritysetup")
	hashPath = dataPath + ".verity"
	out := run(t, tool, append(append([]string{"format"}, args...), dataPath, hashPath)...)
	m := rootHashLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("veritysetup format printed no root hash:\n%s", out)
	}
	return hashPath, mustHex(t, m[1])
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
