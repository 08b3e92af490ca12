package saga

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestParseFailure checks that the StepError of a failure message read
// from the log gives back the message, with the step when one is named.
func TestParseFailure(t *testing.T) {
	tests := []struct {
		msg   string
		step  string
		phase Phase
		rest  string
	}{
		{`step "ship": no courier`, "ship", Forward, "no courier"},
		{`step "a \"b\"": x: y`, `a "b"`, Forward, "x: y"},
		{`compensation of step "pay": down; left in effect: steps ["pay"]`, "pay", Compensate, `down; left in effect: steps ["pay"]`},
		{`saga: steps ["pay"] were interrupted and are not idempotent: their outcome is unknown`, "", "", ""},
		{`step ship: no quotes`, "", "", ""},
		{`step "ship" no colon`, "", "", ""},
		{`step "": empty`, "", "", ""},
		{`step "\x73hip": not as Quote writes it`, "", "", ""},
		{``, "", "", ""},
	}
	for _, tt := range tests {
		e := parseFailure(tt.msg, nil)
		assert.Equal(t, tt.msg, e.Error(), "parseFailure(%q).Error()", tt.msg)
		assert.Equal(t, tt.step, e.Step, "parseFailure(%q).Step", tt.msg)
		assert.Equal(t, tt.phase, e.Phase, "parseFailure(%q).Phase", tt.msg)
		if tt.step != "" {
			assert.Equal(t, tt.rest, e.Message, "parseFailure(%q).Message", tt.msg)
		}
		assert.Nil(t, e.Unwrap())
	}
	cause := errors.New(`step "ship": no courier`)
	assert.Same(t, cause, parseFailure(cause.Error(), cause).Unwrap())
}
