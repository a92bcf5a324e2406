package reprobe

import (
	"encoding/json"
	"time"
)

// Outcome is where a device ended up.
type Outcome string

const (
	// OutcomeBound: a driver is bound to the device. FirmwareFailed non-empty means it bound
	// without some firmware (drivers such as r8169 run degraded without it).
	OutcomeBound Outcome = "bound"
	// OutcomeStillUnbound: every attempt was made (or a repeated firmware failure stopped
	// them) and no driver is bound.
	OutcomeStillUnbound Outcome = "still-unbound"
	// OutcomeSkipped: nothing was written for the device: excluded, guarded, or no method
	// applies.
	OutcomeSkipped Outcome = "skipped"
)

// Result is what happened to one device of the re-probe list.
type Result struct {
	Device  string  `json:"device"`
	Bus     string  `json:"bus"`
	Outcome Outcome `json:"outcome"`
	// Reason explains the outcome in one line: the method that bound the device, or the guard,
	// or what each attempt saw.
	Reason string `json:"reason"`
	// Method is the method that bound the device, or the last one tried ("" when none was).
	Method string `json:"method"`
	// Tried lists the method of each attempt, in order.
	Tried    []string `json:"tried"`
	Attempts int      `json:"attempts"`
	// Driver is the driver bound at the end ("" when none).
	Driver string `json:"driver"`
	// Duration is the time spent on the device, waits included. JSON has it in milliseconds.
	Duration time.Duration `json:"-"`
	// FirmwareFailed lists the firmware names the kernel log reported failing for the device
	// during our attempts, once each, in first-seen order.
	FirmwareFailed []string `json:"firmware_failed"`
	// Guard is the guard protecting the device: why it was skipped, or, prefixed with "lifted
	// by reprobe.force: ", the guard that force overrode.
	Guard string `json:"guard,omitempty"`
	// Warnings are problems verifying the attempts (an unreadable kernel log).
	Warnings []string `json:"warnings,omitempty"`
}

// resultJSON is Result as JSON shows it.
type resultJSON struct {
	resultFields
	DurationMS int64 `json:"duration_ms"`
}

// resultFields has Result's fields without its methods, so that marshalling it does not recurse.
type resultFields Result

// MarshalJSON renders Duration as whole milliseconds, duration_ms.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{resultFields: resultFields(r), DurationMS: r.Duration.Milliseconds()})
}

// UnmarshalJSON reads what MarshalJSON wrote (the report is read back by `status`).
func (r *Result) UnmarshalJSON(data []byte) error {
	var v resultJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*r = Result(v.resultFields)
	r.Duration = time.Duration(v.DurationMS) * time.Millisecond
	return nil
}
