package coap

import (
	"context"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// errorCodes is the one table between mgmt error classes and CoAP response
// codes; the server reads it left to right, the client right to left.
var errorCodes = []struct {
	class error
	code  codes.Code
}{
	{mgmt.ErrNotFound, codes.NotFound},              // 4.04
	{mgmt.ErrInvalid, codes.BadRequest},             // 4.00
	{mgmt.ErrDenied, codes.Forbidden},               // 4.03
	{mgmt.ErrConflict, codes.Conflict},              // 4.09
	{mgmt.ErrTooLarge, codes.RequestEntityTooLarge}, // 4.13
	{mgmt.ErrUnavailable, codes.ServiceUnavailable}, // 5.03
	{errMethodNotAllowed, codes.MethodNotAllowed},   // 4.05, transport only
	{errIncomplete, codes.RequestEntityIncomplete},  // 4.08, transport only
	{errNotAcceptable, codes.NotAcceptable},         // 4.06, transport only
	// A device call that ran out of time; the client reads 5.03 as
	// mgmt.ErrUnavailable, the entry above.
	{context.DeadlineExceeded, codes.ServiceUnavailable},
}

// Transport-level classes that the Device never returns; on the client they
// surface wrapped in mgmt.ErrInvalid because they mean a malformed request.
var (
	errMethodNotAllowed = errors.New("method not allowed")
	errIncomplete       = errors.New("request entity incomplete")
)

// codeFor returns the response code for a Device or transport error.
func codeFor(err error) codes.Code {
	for _, e := range errorCodes {
		if errors.Is(err, e.class) {
			return e.code
		}
	}
	return codes.InternalServerError // 5.00
}

// RemoteError is an error response of the device: its message is the
// device's own text and it unwraps to the mgmt class of the response code.
type RemoteError struct {
	Code  codes.Code
	Class error // a mgmt error class, or nil for 5.00 and unknown codes
	Msg   string
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("device answered %v", e.Code)
	}
	return e.Msg
}

func (e *RemoteError) Unwrap() error { return e.Class }

// errorFrom turns an error response into a RemoteError.
func errorFrom(code codes.Code, msg string) error {
	e := &RemoteError{Code: code, Msg: msg}
	for _, ec := range errorCodes {
		if ec.code == code {
			e.Class = ec.class
			break
		}
	}
	switch e.Class {
	case errMethodNotAllowed, errIncomplete, errNotAcceptable:
		e.Class = fmt.Errorf("%w: %w", mgmt.ErrInvalid, e.Class)
	}
	return e
}
