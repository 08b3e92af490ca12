package saga

import (
	"fmt"
	"testing"
)

// FuzzParseFailure checks that a StepError gives back the message it was
// parsed from, whatever it is, and that one of the orchestrator's failure
// messages, of any step name Define accepts and any error text, is split
// into its step, phase and message, also once the log has kept it (cut,
// through ValidText).
func FuzzParseFailure(f *testing.F) {
	f.Add("ship", "no courier", false)
	f.Add(`a": b`, `x "y": z`, true)
	f.Add("\u2028é", "\xff\x00 step \"b\": c", false)
	f.Fuzz(func(t *testing.T, name, rest string, comp bool) {
		msg := parseFailure(rest, nil)
		if msg.Error() != rest {
			t.Fatalf("round trip %q -> %q", rest, msg.Error())
		}
		if checkName(name) != nil {
			return
		}
		format, phase := "step %q: %s", Forward
		if comp {
			format, phase = "compensation of step %q: %s", Compensate
		}
		e := parseFailure(fmt.Sprintf(format, name, rest), nil)
		if e.Step != name || e.Phase != phase || e.Message != rest {
			t.Fatalf("%q %q: got %+v", name, rest, e)
		}
		l := parseFailure(logText(fmt.Sprintf(format, name, rest)), nil)
		if l.Step != name || l.Phase != phase {
			t.Fatalf("logged %q %q: got %q %q", name, rest, l.Step, l.Phase)
		}
	})
}
