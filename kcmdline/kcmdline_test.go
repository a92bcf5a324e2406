package kcmdline

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	got := Split(`  root=LABEL=COS_ACTIVE  firmware.auto=false rd.kairos="a b" "quoted key"=1` + "\tlast")
	want := []Token{
		{"root=LABEL=COS_ACTIVE", 2}, {"firmware.auto=false", 25}, {`rd.kairos="a b"`, 45},
		{`"quoted key"=1`, 61}, {"last", 76},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Split:\n got %+v\nwant %+v", got, want)
	}
	if Split("   ") != nil {
		t.Error("blank command line has tokens")
	}
}
