package soa

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNoInstance is matched (errors.Is) by every NoInstanceError.
var ErrNoInstance = errors.New("soa: no instance available")

// DiscoveryError is a registry operation that failed: etcd unreachable, refused credentials.
type DiscoveryError struct {
	Op  string // what was being done, e.g. "list /soa/services/catalog/"
	Err error  // the etcd client's error
}

// Error is "soa: registry: OP: cause".
func (e *DiscoveryError) Error() string { return "soa: registry: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the etcd client's error.
func (e *DiscoveryError) Unwrap() error { return e.Err }

// NoInstanceError means no usable instance was left to try: none registered, all of weight 0,
// excluded by the IDL policy, ejected, or already tried by this call. Nothing was sent.
type NoInstanceError struct {
	Service string // the service called
	Reason  string // why none is usable
}

// Error names the service and the reason.
func (e *NoInstanceError) Error() string {
	return fmt.Sprintf("soa: no instance of %s available: %s", e.Service, e.Reason)
}

// Is makes errors.Is(err, ErrNoInstance) true.
func (e *NoInstanceError) Is(target error) bool { return target == ErrNoInstance }

// TransportError is an attempt that failed on the connection: it could not be made, it broke,
// or the reply could not be read. Sent tells whether the request may have reached the server
// (false: it certainly did not, so the call may go to another instance whatever its method).
type TransportError struct {
	Service, Method, Address string // the call and the instance tried
	Sent                     bool   // the request may have reached the server
	Err                      error  // the cause
}

// Error names the method, the address and whether the request was sent.
func (e *TransportError) Error() string {
	state := "not sent"
	if e.Sent {
		state = "sent"
	}
	return fmt.Sprintf("soa: %s.%s on %s (%s): %v", e.Service, e.Method, e.Address, state, e.Err)
}

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// DeadlineError is a call whose deadline passed: before or while it was on the wire, or on
// arrival at the server, which then refused it unexecuted (Refused). It matches
// errors.Is(err, context.DeadlineExceeded). It is never retried.
type DeadlineError struct {
	Service, Method, Address string // the call and the instance tried
	Refused                  bool   // the server said soa-error: late; the handler did not run
}

// Error names the call and says whether the server refused it.
func (e *DeadlineError) Error() string {
	if e.Refused {
		return fmt.Sprintf("soa: %s.%s on %s: deadline exceeded on arrival; the server refused it unexecuted",
			e.Service, e.Method, e.Address)
	}
	return fmt.Sprintf("soa: %s.%s on %s: deadline exceeded", e.Service, e.Method, e.Address)
}

// Unwrap returns context.DeadlineExceeded.
func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// RetryError is a call whose every attempt failed (more than one); Attempts holds each error in
// order. errors.Is and errors.As look through all of them.
type RetryError struct {
	Service, Method string  // the call
	Attempts        []error // each attempt's error, in order
}

// Error lists the attempts.
func (e *RetryError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.Error()
	}
	return fmt.Sprintf("soa: %s.%s failed after %d attempts: %s", e.Service, e.Method,
		len(e.Attempts), strings.Join(parts, "; "))
}

// Unwrap returns every attempt's error.
func (e *RetryError) Unwrap() []error { return e.Attempts }

// errWrongTarget is the server's soa-error: wrong-target: this address serves another service or
// instance now; the call was not executed.
var errWrongTarget = errors.New("the server serves another service or instance now (soa-error: wrong-target); not executed")
