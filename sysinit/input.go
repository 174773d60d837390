package sysinit

import (
	"encoding/binary"
	"errors"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	EvKey    = 1   // EV_KEY
	KeyPower = 116 // KEY_POWER
)

// InputEventSize is sizeof(struct input_event) on 64-bit Linux: a struct
// timeval (two 8-byte fields), then type u16, code u16, value s32.
const InputEventSize = 24

// InputEvent is one struct input_event, without the timestamp.
type InputEvent struct {
	Type  uint16
	Code  uint16
	Value int32
}

var errShortEvent = errors.New("input event shorter than 24 bytes")

// DecodeInputEvent decodes one native-endian struct input_event.
func DecodeInputEvent(b []byte) (InputEvent, error) {
	if len(b) < InputEventSize {
		return InputEvent{}, errShortEvent
	}
	return InputEvent{
		Type:  binary.NativeEndian.Uint16(b[16:]),
		Code:  binary.NativeEndian.Uint16(b[18:]),
		Value: int32(binary.NativeEndian.Uint32(b[20:])),
	}, nil
}

// PowerPressed reports a press (value 1, not release 0 or repeat 2) of the
// power key: what an ACPI "Power Button" device sends on QMP
// system_powerdown.
func (e InputEvent) PowerPressed() bool {
	return e.Type == EvKey && e.Code == KeyPower && e.Value == 1
}
