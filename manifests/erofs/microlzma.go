package erofs

// MicroLZMA, the lzma format of erofs: a raw LZMA stream (no header, no end marker) whose first
// byte is the bitwise negation of the properties byte (lc/lp/pb) and stands in for the range
// coder's first byte, which is always zero. The compressed size is the pcluster's (after its
// leading zero padding) and the output size comes from the extent.
//
// This is a port of the decoder the kernel uses for erofs, xz-embedded's xz_dec_microlzma
// (lib/xz/xz_dec_lzma2.c: lzma_main, lzma_literal, lzma_match, lzma_rep_match, rc_*;
// fs/erofs/decompressor_lzma.c calls xz_dec_microlzma_reset(comp_size, outputsize,
// !partial_decoding)). It replaces github.com/ulikunitz/xz/lzma, which cannot decode a prefix:
// its reader decodes ahead of what is read, so a partial (deduplicated, Z_EROFS_LI_PARTIAL_REF)
// extent failed with "writeMatch: distance out of range" (the dictionary was sized for the
// prefix) or ended with io.ErrUnexpectedEOF before handing out the prefix (the stream has no
// end marker and the look-ahead ran past its end). Found with erofs-utils 1.8.6
// `mkfs.erofs -zlzma -Ededupe` (mkfs18_test.go). No maintained Go package decodes a MicroLZMA
// prefix; xz-embedded is in the public domain (the notice at the top of xz_dec_lzma2.c), so the
// port carries no licence condition.
//
// Semantics, as xz_dec_microlzma_run's:
//   - decoding stops once n bytes are out; a match running past n is cut;
//   - reading past the compressed bytes is an error (the stream ends early);
//   - an exact (non-partial) extent must also end exactly there: no match left over, the
//     range coder finished (code == 0) and every compressed byte consumed ("pedantic").
//
// The output buffer is the dictionary: a match may reach back to the output's start, never
// before it (dict_repeat's dist >= dict->full check; an end-of-stream marker, distance
// 0xFFFFFFFF, fails it too).

const (
	lzmaStates        = 12
	lzmaPosStatesMax  = 1 << 4
	lzmaDistStates    = 4
	lzmaDistSlots     = 64
	lzmaDistModelEnd  = 14
	lzmaFullDistances = 1 << (lzmaDistModelEnd / 2)
	lzmaAlignBits     = 4
	lzmaMatchLenMin   = 2
	lzmaLenLow        = 8
	lzmaLenMid        = 8
	lzmaLenHigh       = 256
	lzmaLiteralCoder  = 0x300
	lzmaProbInit      = 1 << 10 // RC_BIT_MODEL_TOTAL / 2
)

type lzmaLenProbs struct {
	choice, choice2 uint16
	low             [lzmaPosStatesMax][lzmaLenLow]uint16
	mid             [lzmaPosStatesMax][lzmaLenMid]uint16
	high            [lzmaLenHigh]uint16
}

func (l *lzmaLenProbs) init() {
	l.choice, l.choice2 = lzmaProbInit, lzmaProbInit
	for i := range l.low {
		fillProbs(l.low[i][:])
		fillProbs(l.mid[i][:])
	}
	fillProbs(l.high[:])
}

func fillProbs(p []uint16) {
	for i := range p {
		p[i] = lzmaProbInit
	}
}

// rangeDecoder is xz-embedded's rc_dec over the whole compressed stream. Reading past its end
// yields zeros and sets over; the main loop checks over after every symbol (rc_limit_exceeded).
type rangeDecoder struct {
	in        []byte
	pos       int
	rng, code uint32
	over      bool
}

func (rc *rangeDecoder) normalize() {
	if rc.rng < 1<<24 {
		rc.rng <<= 8
		var b byte
		if rc.pos < len(rc.in) {
			b = rc.in[rc.pos]
		} else {
			rc.over = true
		}
		rc.pos++
		rc.code = rc.code<<8 | uint32(b)
	}
}

func (rc *rangeDecoder) bit(p *uint16) uint32 {
	rc.normalize()
	bound := (rc.rng >> 11) * uint32(*p)
	if rc.code < bound {
		rc.rng = bound
		*p += (1<<11 - *p) >> 5
		return 0
	}
	rc.rng -= bound
	rc.code -= bound
	*p -= *p >> 5
	return 1
}

// bittree decodes a symbol of log2(limit) bits, most significant first (rc_bittree minus limit).
func (rc *rangeDecoder) bittree(probs []uint16, limit uint32) uint32 {
	symbol := uint32(1)
	for symbol < limit {
		symbol = symbol<<1 | rc.bit(&probs[symbol])
	}
	return symbol - limit
}

// bittreeReverse adds a symbol of n bits, least significant first, to *dest.
func (rc *rangeDecoder) bittreeReverse(probs []uint16, dest *uint32, n uint32) {
	symbol := uint32(1)
	for i := uint32(0); i < n; i++ {
		b := rc.bit(&probs[symbol])
		symbol = symbol<<1 | b
		*dest += b << i
	}
}

// direct appends n bits of probability 1/2 to *dest (rc_direct).
func (rc *rangeDecoder) direct(dest *uint32, n uint32) {
	for ; n > 0; n-- {
		rc.normalize()
		rc.rng >>= 1
		rc.code -= rc.rng
		mask := 0 - (rc.code >> 31)
		rc.code += rc.rng & mask
		*dest = *dest<<1 + mask + 1
	}
}

type lzmaDecoder struct {
	rc                     rangeDecoder
	lc, lpMask, pbMask     uint32
	state                  uint32
	rep0, rep1, rep2, rep3 uint32
	isMatch                [lzmaStates][lzmaPosStatesMax]uint16
	isRep                  [lzmaStates]uint16
	isRep0                 [lzmaStates]uint16
	isRep1                 [lzmaStates]uint16
	isRep2                 [lzmaStates]uint16
	isRep0Long             [lzmaStates][lzmaPosStatesMax]uint16
	distSlot               [lzmaDistStates][lzmaDistSlots]uint16
	distSpecial            [1 + lzmaFullDistances - lzmaDistModelEnd]uint16
	distAlign              [1 << lzmaAlignBits]uint16
	matchLen, repLen       lzmaLenProbs
	literal                []uint16 // lzmaLiteralCoder probabilities per (lc, lp) context
}

// decodeMicroLZMA decodes the MicroLZMA stream src into n bytes. With partial, the stream may
// decode to more than n bytes (a deduplicated extent uses a prefix of its pcluster).
func decodeMicroLZMA(src []byte, n int, partial bool) ([]byte, error) {
	// xz_dec_microlzma_run: at least the 5 range coder init bytes, the first of which is the
	// negated properties byte.
	if len(src) < 5 {
		return nil, corrupt("microlzma stream of %d bytes", len(src))
	}
	d := &lzmaDecoder{}
	props := ^src[0]
	// lzma_props: pb <= 4, lp <= 4, lc <= 8 and lc + lp <= 4
	if props > (4*5+4)*9+8 {
		return nil, corrupt("microlzma properties byte 0x%02x (negated 0x%02x) is invalid", src[0], props)
	}
	pb, lp, lc := uint32(props)/45, uint32(props)%45/9, uint32(props)%9
	if lc+lp > 4 {
		return nil, corrupt("microlzma properties lc %d + lp %d exceed 4", lc, lp)
	}
	d.lc, d.lpMask, d.pbMask = lc, 1<<lp-1, 1<<pb-1
	for i := range d.isMatch {
		fillProbs(d.isMatch[i][:])
		fillProbs(d.isRep0Long[i][:])
	}
	fillProbs(d.isRep[:])
	fillProbs(d.isRep0[:])
	fillProbs(d.isRep1[:])
	fillProbs(d.isRep2[:])
	for i := range d.distSlot {
		fillProbs(d.distSlot[i][:])
	}
	fillProbs(d.distSpecial[:])
	fillProbs(d.distAlign[:])
	d.matchLen.init()
	d.repLen.init()
	d.literal = make([]uint16, lzmaLiteralCoder<<(lc+lp))
	fillProbs(d.literal)
	// rc_read_init: 5 bytes into the 32-bit code; the properties byte shifts out.
	d.rc = rangeDecoder{in: src, pos: 5, rng: 0xffffffff}
	for _, b := range src[1:5] {
		d.rc.code = d.rc.code<<8 | uint32(b)
	}

	out := make([]byte, n)
	pending, err := d.run(out)
	if err != nil {
		return nil, err
	}
	if !partial && (pending > 0 || d.rc.code != 0 || d.rc.pos != len(src)) {
		return nil, corrupt("microlzma stream does not end after %d bytes (match left %d, range coder code 0x%x, %d of %d bytes read)", n, pending, d.rc.code, d.rc.pos, len(src))
	}
	return out, nil
}

// run is lzma_main over the whole output; it returns the length of the match cut at the end.
func (d *lzmaDecoder) run(out []byte) (pending uint32, err error) {
	rc := &d.rc
	pos := 0
	for pos < len(out) {
		if rc.over {
			return 0, corrupt("microlzma stream ends after %d of %d bytes", pos, len(out))
		}
		posState := uint32(pos) & d.pbMask
		if rc.bit(&d.isMatch[d.state][posState]) == 0 {
			out[pos] = d.literalByte(out, pos)
			pos++
			switch {
			case d.state < 4:
				d.state = 0
			case d.state < 10:
				d.state -= 3
			default:
				d.state -= 6
			}
			continue
		}
		var length uint32
		if rc.bit(&d.isRep[d.state]) != 0 {
			length = d.repMatch(posState)
		} else {
			length = d.match(posState)
		}
		// dict_repeat: the distance must stay inside what is already out
		if uint64(d.rep0) >= uint64(pos) {
			return 0, corrupt("microlzma match distance %d at output %d", uint64(d.rep0)+1, pos)
		}
		left := min(int(length), len(out)-pos)
		back := pos - int(d.rep0) - 1
		for i := 0; i < left; i++ {
			out[pos+i] = out[back+i]
		}
		pos += left
		pending = length - uint32(left)
	}
	// lzma_main normalizes once more after its loop: the pedantic check counts that byte.
	rc.normalize()
	if rc.over {
		return 0, corrupt("microlzma stream ends before its range coder is flushed (%d bytes)", len(rc.in))
	}
	return pending, nil
}

func (d *lzmaDecoder) literalByte(out []byte, pos int) byte {
	rc := &d.rc
	var prev uint32
	if pos > 0 {
		prev = uint32(out[pos-1])
	}
	ctx := prev>>(8-d.lc) + (uint32(pos)&d.lpMask)<<d.lc
	probs := d.literal[ctx*lzmaLiteralCoder : (ctx+1)*lzmaLiteralCoder]
	if d.state < 7 {
		return byte(rc.bittree(probs, 0x100))
	}
	// after a match: the byte at rep0 steers the probabilities until a bit differs
	symbol := uint32(1)
	matchByte := uint32(out[pos-int(d.rep0)-1]) << 1
	offset := uint32(0x100)
	for symbol < 0x100 {
		matchBit := matchByte & offset
		matchByte <<= 1
		if rc.bit(&probs[offset+matchBit+symbol]) != 0 {
			symbol = symbol<<1 | 1
			offset &= matchBit
		} else {
			symbol <<= 1
			offset &^= matchBit
		}
	}
	return byte(symbol)
}

func (d *lzmaDecoder) length(l *lzmaLenProbs, posState uint32) uint32 {
	rc := &d.rc
	if rc.bit(&l.choice) == 0 {
		return lzmaMatchLenMin + rc.bittree(l.low[posState][:], lzmaLenLow)
	}
	if rc.bit(&l.choice2) == 0 {
		return lzmaMatchLenMin + lzmaLenLow + rc.bittree(l.mid[posState][:], lzmaLenMid)
	}
	return lzmaMatchLenMin + lzmaLenLow + lzmaLenMid + rc.bittree(l.high[:], lzmaLenHigh)
}

// match is lzma_match: a new distance; it returns the length.
func (d *lzmaDecoder) match(posState uint32) uint32 {
	rc := &d.rc
	if d.state < 7 {
		d.state = 7
	} else {
		d.state = 10
	}
	d.rep3, d.rep2, d.rep1 = d.rep2, d.rep1, d.rep0
	length := d.length(&d.matchLen, posState)
	slot := rc.bittree(d.distSlot[min(length-lzmaMatchLenMin, lzmaDistStates-1)][:], lzmaDistSlots)
	if slot < 4 {
		d.rep0 = slot
		return length
	}
	limit := slot>>1 - 1
	d.rep0 = 2 + slot&1
	if slot < lzmaDistModelEnd {
		d.rep0 <<= limit
		// xz-embedded: dist_special + rep0 - dist_slot - 1, indexed from 1; here the array
		// has a leading unused element (LzmaSpec's PosDecoders + dist - posSlot)
		rc.bittreeReverse(d.distSpecial[d.rep0-slot:], &d.rep0, limit)
	} else {
		rc.direct(&d.rep0, limit-lzmaAlignBits)
		d.rep0 <<= lzmaAlignBits
		rc.bittreeReverse(d.distAlign[:], &d.rep0, lzmaAlignBits)
	}
	return length
}

// repMatch is lzma_rep_match: one of the last four distances; it returns the length.
func (d *lzmaDecoder) repMatch(posState uint32) uint32 {
	rc := &d.rc
	if rc.bit(&d.isRep0[d.state]) == 0 {
		if rc.bit(&d.isRep0Long[d.state][posState]) == 0 {
			if d.state < 7 { // short rep: one byte at rep0
				d.state = 9
			} else {
				d.state = 11
			}
			return 1
		}
	} else {
		var dist uint32
		if rc.bit(&d.isRep1[d.state]) == 0 {
			dist = d.rep1
		} else {
			if rc.bit(&d.isRep2[d.state]) == 0 {
				dist = d.rep2
			} else {
				dist = d.rep3
				d.rep3 = d.rep2
			}
			d.rep2 = d.rep1
		}
		d.rep1 = d.rep0
		d.rep0 = dist
	}
	if d.state < 7 {
		d.state = 8
	} else {
		d.state = 11
	}
	return d.length(&d.repLen, posState)
}
