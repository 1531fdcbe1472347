package soa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The error codes of registry/SCHEMA.md ("Parse results"), checked in this order.
const (
	ErrNotUTF8      = "not_utf8"
	ErrNotJSON      = "not_json"
	ErrNotObject    = "not_object"
	ErrMissingField = "missing_field"
	ErrBadType      = "bad_type"
	ErrBadValue     = "bad_value"
	ErrKeyMismatch  = "key_mismatch"
)

var (
	serviceName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	instanceID  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Instance is one registered instance: a registry value with every field filled in.
type Instance struct {
	Service   string            `json:"service"`    // the soa service name
	Host      string            `json:"host"`       // the host clients dial (IPv6 without brackets)
	Port      int               `json:"port"`       // the port clients dial
	Weight    int               `json:"weight"`     // relative share of traffic; 0: none
	Protocol  string            `json:"protocol"`   // "binary" or "compact"
	Transport string            `json:"transport"`  // "buffered" or "framed"
	Version   string            `json:"version"`    // the release version
	IDLHash   string            `json:"idl_hash"`   // fingerprint of the served IDL; "" unknown
	Tags      map[string]string `json:"tags"`       // free-form labels
	Pid       int64             `json:"pid"`        // the registering process
	StartedAt float64           `json:"started_at"` // Unix seconds when it started
	// ID is this registration's instance id ("" when the writer sets none); sent back to the
	// instance as soa-instance so it can refuse calls meant for another one.
	ID string `json:"id"`
	// THeader is true when the instance accepts Apache Thrift THeader frames with call metadata.
	THeader bool `json:"theader"`
	// TLS is true when the instance serves TLS only.
	TLS bool `json:"tls"`
	// MetricsPort is the instance's HTTP metrics port on Host; 0 means none.
	MetricsPort int `json:"metrics_port"`
	// Leaving is true when the value was marked just before an explicit deregistration;
	// readers treat such an instance as gone.
	Leaving bool `json:"-"`
}

// Address is host:port, with an IPv6 host in brackets: what the registry key ends with.
func (i Instance) Address() string {
	if strings.Contains(i.Host, ":") {
		return "[" + i.Host + "]:" + strconv.Itoa(i.Port)
	}
	return i.Host + ":" + strconv.Itoa(i.Port)
}

// ParseError is a registry value that breaks SCHEMA.md; Code is one of the Err* codes.
type ParseError struct {
	Code    string // one of the Err* codes
	Message string // what was wrong, for people
}

// Error is "code: message".
func (e *ParseError) Error() string { return e.Code + ": " + e.Message }

func invalid(code, format string, args ...any) *ParseError {
	return &ParseError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ServicePrefix is "{prefix}/services/{service}/", the range that holds a service's instances.
func ServicePrefix(prefix, service string) string {
	return strings.TrimRight(prefix, "/") + "/services/" + service + "/"
}

// ParseInstance parses a registry value per SCHEMA.md. When key is not empty, the key's service
// and address must match the value's (key_mismatch otherwise). Errors are *ParseError.
func ParseInstance(value []byte, key, prefix string) (Instance, error) {
	if !utf8.Valid(value) {
		return Instance{}, invalid(ErrNotUTF8, "the value is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return Instance{}, invalid(ErrNotJSON, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Instance{}, invalid(ErrNotJSON, "data after the JSON value")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return Instance{}, invalid(ErrNotObject, "expected a JSON object, got %s", jsonKind(doc))
	}
	f := fields{obj}
	in := Instance{Weight: 100, Protocol: "binary", Transport: "buffered", Tags: map[string]string{}}
	var err error
	if in.Service, err = f.str("service", true, ""); err != nil {
		return Instance{}, err
	}
	if !serviceName.MatchString(in.Service) {
		return Instance{}, invalid(ErrBadValue, "service: not a service name: %q", in.Service)
	}
	if in.Host, err = f.str("host", true, ""); err != nil {
		return Instance{}, err
	}
	if in.Host == "" || strings.ContainsAny(in.Host, "/ \t[]") {
		return Instance{}, invalid(ErrBadValue, "host: not a host: %q", in.Host)
	}
	port, err := f.integer("port", true, 0)
	if err != nil {
		return Instance{}, err
	}
	if port < 1 || port > 65535 {
		return Instance{}, invalid(ErrBadValue, "port: out of range: %d", port)
	}
	in.Port = int(port)
	weight, err := f.integer("weight", false, 100)
	if err != nil {
		return Instance{}, err
	}
	if weight < 0 || weight > 1<<31-1 {
		return Instance{}, invalid(ErrBadValue, "weight: out of range: %d", weight)
	}
	in.Weight = int(weight)
	if in.Protocol, err = f.str("protocol", false, "binary"); err != nil {
		return Instance{}, err
	}
	if in.Protocol != "binary" && in.Protocol != "compact" {
		return Instance{}, invalid(ErrBadValue, "protocol: unknown: %q", in.Protocol)
	}
	if in.Transport, err = f.str("transport", false, "buffered"); err != nil {
		return Instance{}, err
	}
	if in.Transport != "buffered" && in.Transport != "framed" {
		return Instance{}, invalid(ErrBadValue, "transport: unknown: %q", in.Transport)
	}
	if in.Version, err = f.str("version", false, ""); err != nil {
		return Instance{}, err
	}
	if in.IDLHash, err = f.str("idl_hash", false, ""); err != nil {
		return Instance{}, err
	}
	if in.Tags, err = f.tags("tags"); err != nil {
		return Instance{}, err
	}
	if in.Pid, err = f.integer("pid", false, 0); err != nil {
		return Instance{}, err
	}
	if in.StartedAt, err = f.number("started_at"); err != nil {
		return Instance{}, err
	}
	if in.ID, err = f.str("id", false, ""); err != nil {
		return Instance{}, err
	}
	if in.ID != "" && !instanceID.MatchString(in.ID) {
		return Instance{}, invalid(ErrBadValue, "id: not an instance id: %q", in.ID)
	}
	if in.THeader, err = f.boolean("theader"); err != nil {
		return Instance{}, err
	}
	if in.TLS, err = f.boolean("tls"); err != nil {
		return Instance{}, err
	}
	metrics, err := f.integer("metrics_port", false, 0)
	if err != nil {
		return Instance{}, err
	}
	if metrics < 0 || metrics > 65535 {
		return Instance{}, invalid(ErrBadValue, "metrics_port: out of range: %d", metrics)
	}
	in.MetricsPort = int(metrics)
	in.Leaving = obj["leaving"] == true
	if key != "" {
		if want := ServicePrefix(prefix, in.Service) + in.Address(); key != want {
			return Instance{}, invalid(ErrKeyMismatch, "key %s does not match %s", key, want)
		}
	}
	return in, nil
}

// fields reads typed fields of a decoded JSON object; a null optional field takes its default.
type fields struct{ obj map[string]any }

func (f fields) get(name string, required bool) (any, bool, error) {
	v, present := f.obj[name]
	if !present && required {
		return nil, false, invalid(ErrMissingField, "%s: required", name)
	}
	if v == nil && !required {
		return nil, false, nil
	}
	return v, true, nil
}

func (f fields) str(name string, required bool, def string) (string, error) {
	v, ok, err := f.get(name, required)
	if err != nil || !ok {
		return def, err
	}
	s, isStr := v.(string)
	if !isStr {
		return "", badType(name, "a string", v)
	}
	return s, nil
}

// integer accepts only a JSON number written without a fraction or exponent (as Python's json
// module reads an int); booleans are not integers.
func (f fields) integer(name string, required bool, def int64) (int64, error) {
	v, ok, err := f.get(name, required)
	if err != nil || !ok {
		return def, err
	}
	n, isNum := v.(json.Number)
	if !isNum || strings.ContainsAny(string(n), ".eE") {
		return 0, badType(name, "an integer", v)
	}
	i, perr := strconv.ParseInt(string(n), 10, 64)
	if perr != nil {
		return 0, invalid(ErrBadValue, "%s: out of range: %s", name, n)
	}
	return i, nil
}

func (f fields) boolean(name string) (bool, error) {
	v, ok, err := f.get(name, false)
	if err != nil || !ok {
		return false, err
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, badType(name, "a boolean", v)
	}
	return b, nil
}

func (f fields) number(name string) (float64, error) {
	v, ok, err := f.get(name, false)
	if err != nil || !ok {
		return 0, err
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, badType(name, "a number", v)
	}
	x, perr := n.Float64()
	if perr != nil {
		return 0, invalid(ErrBadValue, "%s: out of range: %s", name, n)
	}
	return x, nil
}

func (f fields) tags(name string) (map[string]string, error) {
	v, ok, _ := f.get(name, false)
	out := map[string]string{}
	if !ok {
		return out, nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return nil, badType(name, "an object", v)
	}
	for k, tv := range m {
		s, isStr := tv.(string)
		if !isStr {
			return nil, invalid(ErrBadType, "%s: values must be strings (%s)", name, k)
		}
		out[k] = s
	}
	return out, nil
}

func badType(name, want string, got any) *ParseError {
	return invalid(ErrBadType, "%s: expected %s, got %s", name, want, jsonKind(got))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
