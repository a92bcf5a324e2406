package erofs

import (
	"encoding/binary"
)

// Compressed-file metadata, from erofs_fs.h and the block mapping of fs/erofs/zmap.c
// (mirrored by erofs-utils lib/zmap.c). A compressed file is cut into logical clusters
// (lclusters) of 1 << lclusterbits bytes; each has an index entry saying whether a compressed
// extent starts in it (HEAD1/HEAD2/PLAIN, with the offset of that start in di_clusterofs and
// the physical block in blkaddr) or not (NONHEAD, with the distance back to its head in
// delta[0] and forward to the next head in delta[1]). An extent's data decompresses from one
// physical cluster (pcluster) of one or more blocks.
const (
	adviseCompacted2B    = 0x0001 // compact layout: 2-byte entries in the middle
	adviseExtents        = 0x0001 // full layout: extent records (not supported)
	adviseBigPcluster1   = 0x0002
	adviseBigPcluster2   = 0x0004
	adviseInlinePcluster = 0x0008 // ztailpacking: the tail pcluster is inline after the indexes
	adviseInterlaced     = 0x0010
	adviseFragment       = 0x0020 // the tail (or all) of the file is in the packed inode

	lclusterPlain   = 0
	lclusterHead1   = 1
	lclusterNonHead = 2
	lclusterHead2   = 3

	liPartialRef = 1 << 15 // full indexes, HEAD: the extent uses only part of its pcluster
	liD0Cblkcnt  = 1 << 11 // first NONHEAD of a big pcluster: delta[0] holds its block count

	mapHeaderSize    = 8
	pclusterMaxSize  = 1 << 20  // Z_EROFS_PCLUSTER_MAX_SIZE
	pclusterMaxDSize = 12 << 20 // Z_EROFS_PCLUSTER_MAX_DSIZE
)

// zinfo is the decoded z_erofs_map_header of one inode, plus what finding its tail extent
// learned (z_erofs_fill_inode_lazy).
type zinfo struct {
	advise      uint16
	lbits       uint // lclusterbits
	algs        [2]int
	idataSize   int64  // ztailpacking: encoded size of the inline tail pcluster
	fragOff     uint64 // fragment offset in the packed inode, or position of the inline tail
	tailHeadLcn uint64
}

// maprec follows z_erofs_maprecorder: the last index entry loaded.
type maprec struct {
	lcn, pblk, compressedBlks uint64
	typ, headType             uint8
	clusterOfs                uint64
	delta                     [2]uint64
	nextPackOff               int64
	partialRef                bool
}

// extent is one mapped piece of a compressed file: [la, la+llen) of the file.
type extent struct {
	la, llen int64
	pa, plen int64
	alg      int
	fragment bool // data is at zinfo.fragOff in the packed inode
	inline   bool // ztailpacking: pa is a byte position in the metadata
	partial  bool // decompress only a prefix of the pcluster's output
	data     []byte
}

func (r *reader) loadZInfo() error {
	if r.z != nil {
		return nil
	}
	ino, le := r.ino, binary.LittleEndian
	var h [mapHeaderSize]byte
	if err := r.fs.readMeta(h[:], alignUp(ino.dataStart(), 8), "compression map header", ino.nid); err != nil {
		return err
	}
	z := &zinfo{}
	// Bit 7 of h_clusterbits: the whole file is in the packed inode; the other 63 bits of the
	// header are the offset there.
	if h[7]&0x80 != 0 {
		z.advise = adviseFragment
		z.fragOff = le.Uint64(h[:]) &^ (1 << 63)
		r.z = z
		return nil
	}
	z.advise = le.Uint16(h[4:])
	z.lbits = uint(r.fs.sb.BlkSzBits) + uint(h[7]&15)
	if ino.layout == layoutCompressedFull && z.advise&adviseExtents != 0 {
		return unsupported("inode %d uses extent records (h_advise 0x%x)", ino.nid, z.advise)
	}
	z.algs = [2]int{int(h[6] & 15), int(h[6] >> 4)}
	if z.advise&adviseFragment != 0 {
		z.fragOff = uint64(le.Uint32(h[0:]))
	} else if z.advise&adviseInlinePcluster != 0 {
		z.idataSize = int64(le.Uint16(h[2:]))
	}
	if ino.layout == layoutCompressedCompact &&
		(z.advise&adviseBigPcluster1 == 0) != (z.advise&adviseBigPcluster2 == 0) {
		return corrupt("inode %d: compact indexes with inconsistent big pcluster bits (h_advise 0x%x)", ino.nid, z.advise)
	}
	if z.lbits > 30 {
		return corrupt("inode %d: lclusterbits %d", ino.nid, z.lbits)
	}
	r.z = z
	if z.idataSize > 0 || z.advise&adviseFragment != 0 {
		if _, err := r.mapExtent(ino.size-1, true); err != nil {
			r.z = nil
			return err
		}
	}
	return nil
}

func (r *reader) loadLcluster(m *maprec, lcn uint64, lookahead bool) error {
	if r.ino.layout == layoutCompressedCompact {
		if err := r.loadCompact(m, lcn, lookahead); err != nil {
			return err
		}
	} else if err := r.loadFull(m, lcn); err != nil {
		return err
	}
	if m.typ != lclusterNonHead && m.clusterOfs >= 1<<r.z.lbits {
		return corrupt("inode %d: lcluster %d: clusterofs %d >= lcluster size %d", r.ino.nid, lcn, m.clusterOfs, 1<<r.z.lbits)
	}
	return nil
}

// loadFull reads one 8-byte z_erofs_lcluster_index; they start 8 bytes after the map header.
func (r *reader) loadFull(m *maprec, lcn uint64) error {
	ino, le := r.ino, binary.LittleEndian
	if lcn > uint64(ino.size>>r.z.lbits)+1 {
		return corrupt("inode %d: lcluster %d is past the file end (%d bytes)", ino.nid, lcn, ino.size)
	}
	pos := alignUp(ino.dataStart(), 8) + mapHeaderSize + 8 + int64(lcn)*8
	var d [8]byte
	if err := r.fs.readMeta(d[:], pos, "lcluster index", ino.nid); err != nil {
		return err
	}
	m.lcn = lcn
	m.nextPackOff = pos + 8
	advise := le.Uint16(d[0:])
	m.typ = uint8(advise & 3)
	if m.typ == lclusterNonHead {
		m.clusterOfs = 1 << r.z.lbits
		m.delta[0] = uint64(le.Uint16(d[4:]))
		if m.delta[0]&liD0Cblkcnt != 0 {
			if r.z.advise&(adviseBigPcluster1|adviseBigPcluster2) == 0 {
				return corrupt("inode %d: lcluster %d has a block count but big pclusters are off", ino.nid, lcn)
			}
			m.compressedBlks = m.delta[0] &^ liD0Cblkcnt
			m.delta[0] = 1
		}
		m.delta[1] = uint64(le.Uint16(d[6:]))
	} else {
		m.partialRef = advise&liPartialRef != 0
		m.clusterOfs = uint64(le.Uint16(d[2:]))
		m.pblk = uint64(le.Uint32(d[4:]))
	}
	return nil
}

// decodeCompacted reads entry i of a compact pack: lobits of value, then 2 bits of type.
func decodeCompacted(lobits uint, in []byte, pos uint) (lo uint64, typ uint8) {
	v := binary.LittleEndian.Uint32(in[pos/8:]) >> (pos & 7)
	return uint64(v & (1<<lobits - 1)), uint8(v>>lobits) & 3
}

// compactedLADistance is get_compacted_la_distance: the distance to the next HEAD.
func compactedLADistance(lobits, encodebits uint, vcnt int, in []byte, i int) uint64 {
	var d1, lo uint64
	var typ uint8
	for ; i < vcnt; i++ {
		lo, typ = decodeCompacted(lobits, in, encodebits*uint(i))
		if typ != lclusterNonHead {
			return d1
		}
		d1++
	}
	// the last entry of a pack keeps delta[1] of its NONHEAD lcluster
	if lo&liD0Cblkcnt == 0 && lo > 0 {
		d1 += lo - 1
	}
	return d1
}

// loadCompact reads an entry of the compact index: packs of 2 four-byte-amortized entries
// (8 bytes) or 16 two-byte-amortized ones (32 bytes), each pack ending with the le32 block
// address of its first HEAD; 4-byte packs pad up to 32-byte alignment, then come 2-byte packs
// (Z_EROFS_ADVISE_COMPACTED_2B), then 4-byte packs for the rest. See
// z_erofs_load_compact_lcluster.
func (r *reader) loadCompact(m *maprec, lcn uint64, lookahead bool) error {
	ino, z := r.ino, r.z
	ebase := alignUp(ino.dataStart(), 8) + mapHeaderSize
	bs := r.fs.sb.BlockSize()
	totalIdx := uint64((ino.size + bs - 1) / bs)
	if lcn >= totalIdx || z.lbits > 14 {
		return corrupt("inode %d: compact lcluster %d of %d (lclusterbits %d)", ino.nid, lcn, totalIdx, z.lbits)
	}
	m.lcn = lcn
	c4Initial := uint64((32-ebase%32)/4) & 7
	var c2 uint64
	if z.advise&adviseCompacted2B != 0 && c4Initial < totalIdx {
		c2 = (totalIdx - c4Initial) / 16 * 16
	}
	pos := ebase
	shift := uint(2)
	if lcn >= c4Initial {
		pos += int64(c4Initial) * 4
		lcn -= c4Initial
		if lcn < c2 {
			shift = 1
		} else {
			pos += int64(c2) * 2
			lcn -= c2
		}
	}
	pos += int64(lcn) << shift
	var vcnt int
	switch {
	case shift == 2 && z.lbits <= 14:
		vcnt = 2
	case shift == 1 && z.lbits <= 12:
		vcnt = 16
	default:
		return unsupported("inode %d: compact 2B indexes with lclusterbits %d", ino.nid, z.lbits)
	}
	packSize := int64(vcnt) << shift
	packStart := pos - pos%packSize
	in := make([]byte, packSize)
	if err := r.fs.readMeta(in, packStart, "compact lcluster index", ino.nid); err != nil {
		return err
	}
	m.nextPackOff = packStart + packSize
	lobits := max(z.lbits, 12) // ilog2(Z_EROFS_LI_D0_CBLKCNT) + 1
	encodebits := uint((packSize-4)*8) / uint(vcnt)
	i := int((pos - packStart) >> shift)
	bigPcluster := z.advise&adviseBigPcluster1 != 0

	lo, typ := decodeCompacted(lobits, in, encodebits*uint(i))
	m.typ = typ
	if typ == lclusterNonHead {
		m.clusterOfs = 1 << z.lbits
		if lookahead {
			m.delta[1] = compactedLADistance(lobits, encodebits, vcnt, in, i)
		}
		if lo&liD0Cblkcnt != 0 {
			if !bigPcluster {
				return corrupt("inode %d: lcluster %d has a block count but big pclusters are off", ino.nid, m.lcn)
			}
			m.compressedBlks = lo &^ liD0Cblkcnt
			m.delta[0] = 1
			return nil
		} else if i+1 != vcnt {
			m.delta[0] = lo
			return nil
		}
		// The last entry of a pack keeps delta[1]; delta[0] comes from the previous one.
		lo, typ = decodeCompacted(lobits, in, encodebits*uint(i-1))
		if typ != lclusterNonHead {
			lo = 0
		} else if lo&liD0Cblkcnt != 0 {
			lo = 1
		}
		m.delta[0] = lo + 1
		return nil
	}
	m.clusterOfs = lo
	m.delta[0] = 0
	// The pack stores the block of its first HEAD; count the pclusters before entry i.
	var nblk uint64
	if !bigPcluster {
		nblk = 1
		for i > 0 {
			i--
			lo, typ = decodeCompacted(lobits, in, encodebits*uint(i))
			if typ == lclusterNonHead {
				i -= int(lo)
			}
			if i >= 0 {
				nblk++
			}
		}
	} else {
		for i > 0 {
			i--
			lo, typ = decodeCompacted(lobits, in, encodebits*uint(i))
			if typ == lclusterNonHead {
				if lo&liD0Cblkcnt != 0 {
					i--
					nblk += lo &^ liD0Cblkcnt
					continue
				}
				if lo <= 1 {
					return corrupt("inode %d: big pcluster lcluster with delta[0] %d", ino.nid, lo)
				}
				i -= int(lo) - 2
				continue
			}
			nblk++
		}
	}
	m.pblk = uint64(binary.LittleEndian.Uint32(in[packSize-4:])) + nblk
	return nil
}

// lookback walks back to the HEAD lcluster of the extent (z_erofs_extent_lookback).
func (r *reader) lookback(m *maprec, e *extent, dist uint64) error {
	for dist > 0 && m.lcn >= dist {
		lcn := m.lcn - dist
		if err := r.loadLcluster(m, lcn, false); err != nil {
			return err
		}
		if m.typ == lclusterNonHead {
			dist = m.delta[0]
			continue
		}
		m.headType = m.typ
		e.la = int64(lcn<<r.z.lbits | m.clusterOfs)
		return nil
	}
	return corrupt("inode %d: bogus lookback distance %d at lcluster %d", r.ino.nid, dist, m.lcn)
}

// compressedLen sets e.plen (z_erofs_get_extent_compressedlen).
func (r *reader) compressedLen(m *maprec, e *extent) error {
	z, bs := r.z, r.fs.sb.BlockSize()
	lcn := m.lcn + 1
	big1 := z.advise&adviseBigPcluster1 != 0
	big2 := z.advise&adviseBigPcluster2 != 0
	if (m.headType == lclusterHead1 && !big1) ||
		((m.headType == lclusterPlain || m.headType == lclusterHead2) && !big2) ||
		int64(lcn<<z.lbits) >= r.ino.size {
		m.compressedBlks = 1
	}
	if m.compressedBlks == 0 {
		if err := r.loadLcluster(m, lcn, false); err != nil {
			return err
		}
		if m.typ == lclusterNonHead {
			if m.delta[0] != 1 {
				return corrupt("inode %d: bogus block count at lcluster %d", r.ino.nid, lcn)
			}
			if m.compressedBlks == 0 {
				return corrupt("inode %d: no block count at lcluster %d", r.ino.nid, lcn)
			}
		} else {
			m.compressedBlks = 1
		}
	}
	e.plen = int64(m.compressedBlks) * bs
	return nil
}

// decompressedLen sets e.llen to the whole extent, up to the next HEAD or the file end
// (z_erofs_get_extent_decompressedlen).
func (r *reader) decompressedLen(m *maprec, e *extent) error {
	z := r.z
	lcn, headLcn := m.lcn, uint64(e.la)>>z.lbits
	for {
		if int64(lcn<<z.lbits) >= r.ino.size {
			e.llen = r.ino.size - e.la
			return nil
		}
		if err := r.loadLcluster(m, lcn, true); err != nil {
			return err
		}
		if m.typ == lclusterNonHead {
			if m.delta[1] == 0 { // invalid d1 written by pre-1.0 mkfs
				m.delta[1] = 1
			}
		} else {
			if lcn != headLcn {
				break
			}
			m.delta[1] = 1
		}
		lcn += m.delta[1]
		if int64(lcn<<z.lbits)-e.la > pclusterMaxDSize {
			return corrupt("inode %d: extent at %d decodes to more than %d bytes", r.ino.nid, e.la, pclusterMaxDSize)
		}
	}
	e.llen = int64(lcn<<z.lbits+m.clusterOfs) - e.la
	return nil
}

// mapExtent maps the extent holding byte ofs (z_erofs_map_blocks_fo, always with the full
// decompressed length). With findTail it maps the last byte and records the tail extent.
func (r *reader) mapExtent(ofs int64, findTail bool) (*extent, error) {
	ino, z, sb := r.ino, r.z, r.fs.sb
	fragment := z.advise&adviseFragment != 0
	ztail := z.idataSize > 0
	if fragment && !findTail && z.tailHeadLcn == 0 {
		return &extent{la: 0, llen: ino.size, fragment: true}, nil
	}
	if ofs < 0 || ofs >= ino.size {
		return nil, corrupt("inode %d: map offset %d outside the file (%d bytes)", ino.nid, ofs, ino.size)
	}
	initialLcn := uint64(ofs) >> z.lbits
	endoff := uint64(ofs) & (1<<z.lbits - 1)
	m := &maprec{}
	if err := r.loadLcluster(m, initialLcn, false); err != nil {
		return nil, err
	}
	if findTail && ztail {
		z.fragOff = uint64(m.nextPackOff)
	}
	e := &extent{}
	end := int64(m.lcn+1) << z.lbits
	switch m.typ {
	case lclusterPlain, lclusterHead1, lclusterHead2:
		if endoff >= m.clusterOfs {
			m.headType = m.typ
			e.la = int64(m.lcn<<z.lbits | m.clusterOfs)
			if ztail && end > ino.size {
				end = ino.size
			}
			break
		}
		if m.lcn == 0 {
			return nil, corrupt("inode %d: logical cluster 0 starts at %d, after the mapped offset %d", ino.nid, m.clusterOfs, ofs)
		}
		end = int64(m.lcn<<z.lbits | m.clusterOfs)
		if err := r.lookback(m, e, 1); err != nil {
			return nil, err
		}
	case lclusterNonHead:
		if err := r.lookback(m, e, m.delta[0]); err != nil {
			return nil, err
		}
	}
	e.partial = m.partialRef
	e.llen = end - e.la
	if findTail {
		z.tailHeadLcn = m.lcn
		if fragment && ino.layout == layoutCompressedFull {
			z.fragOff |= m.pblk << 32
		}
		return e, nil
	}
	switch {
	case ztail && m.lcn == z.tailHeadLcn:
		e.inline = true
		e.pa, e.plen = int64(z.fragOff), z.idataSize
		if e.pa%sb.BlockSize()+e.plen > sb.BlockSize() {
			return nil, corrupt("inode %d: inline tail pcluster of %d bytes at %d crosses a block", ino.nid, e.plen, e.pa)
		}
	case fragment && m.lcn == z.tailHeadLcn:
		e.fragment = true
	default:
		e.pa = int64(m.pblk) << sb.BlkSzBits
		if err := r.compressedLen(m, e); err != nil {
			return nil, err
		}
	}
	switch m.headType {
	case lclusterPlain:
		e.alg = algShifted
		if z.advise&adviseInterlaced != 0 {
			e.alg = algInterlaced
		}
	case lclusterHead2:
		e.alg = z.algs[1]
	default:
		e.alg = z.algs[0]
	}
	if !e.fragment {
		if err := r.decompressedLen(m, e); err != nil {
			return nil, err
		}
	} else {
		e.llen = ino.size - e.la
	}
	// checks of z_erofs_map_sanity_check and the PLAIN length rule
	if e.alg < algMax && sb.ComprAlgs&(1<<e.alg) == 0 {
		return nil, corrupt("inode %d: extent at %d uses %s, not enabled in the superblock (algs 0x%x)", ino.nid, e.la, AlgName(e.alg), sb.ComprAlgs)
	}
	if e.alg > algInterlaced {
		return nil, unsupported("inode %d: extent at %d uses algorithm %d", ino.nid, e.la, e.alg)
	}
	if e.plen > pclusterMaxSize || e.llen > pclusterMaxDSize || e.llen <= 0 {
		return nil, corrupt("inode %d: extent at %d has encoded size %d (max %d) and decoded size %d (max %d)", ino.nid, e.la, e.plen, pclusterMaxSize, e.llen, pclusterMaxDSize)
	}
	if e.la > ofs || e.la+e.llen <= ofs {
		return nil, corrupt("inode %d: extent [%d, %d) does not hold the mapped offset %d", ino.nid, e.la, e.la+e.llen, ofs)
	}
	return e, nil
}
