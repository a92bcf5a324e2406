package fsfile

import (
	"io"
	"reflect"
	"testing"
)

func TestSeek(t *testing.T) {
	for _, c := range []struct {
		cur, offset int64
		whence      int
		want        int64
		err         bool
	}{
		{5, 3, io.SeekStart, 3, false},
		{5, 3, io.SeekCurrent, 8, false},
		{5, -2, io.SeekEnd, 8, false},
		{5, -6, io.SeekCurrent, 0, true},
		{5, 0, 7, 0, true},
	} {
		got, err := Seek("f", c.cur, 10, c.offset, c.whence)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("Seek(cur %d, %d, %d) = %d, %v", c.cur, c.offset, c.whence, got, err)
		}
	}
}

func TestPage(t *testing.T) {
	rest := []int{1, 2, 3, 4, 5}
	for _, step := range []struct {
		n    int
		want []int
		eof  bool
	}{{2, []int{1, 2}, false}, {2, []int{3, 4}, false}, {9, []int{5}, false}, {1, nil, true}, {0, []int{}, false}} {
		got, err := Page(&rest, step.n)
		if (err == io.EOF) != step.eof || (len(got) > 0 || len(step.want) > 0) && !reflect.DeepEqual(got, step.want) {
			t.Errorf("Page(%d) = %v, %v; want %v", step.n, got, err, step.want)
		}
	}
}
