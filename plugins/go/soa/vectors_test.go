package soa

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// vector is one registry/vectors/*.json case (registry/SCHEMA.md, "Vectors").
type vector struct {
	Description string          `json:"description"`
	Prefix      string          `json:"prefix"`
	Key         string          `json:"key"`
	Value       *string         `json:"value"`
	ValueBase64 *string         `json:"value_base64"`
	Valid       bool            `json:"valid"`
	Expect      json.RawMessage `json:"expect"`
	Error       string          `json:"error"`
}

func loadVectors(t *testing.T) map[string]vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "..", "registry", "vectors", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors found under registry/vectors (%v)", err)
	}
	out := map[string]vector{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = v
	}
	return out
}

func (v vector) raw(t *testing.T) []byte {
	if v.ValueBase64 != nil {
		b, err := base64.StdEncoding.DecodeString(*v.ValueBase64)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if v.Value == nil {
		t.Fatal("vector has neither value nor value_base64")
	}
	return []byte(*v.Value)
}

func TestVectors(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			in, err := ParseInstance(v.raw(t), v.Key, v.Prefix)
			if !v.Valid {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("want error %s, got %+v, %v", v.Error, in, err)
				}
				if pe.Code != v.Error {
					t.Fatalf("want error %s, got %v", v.Error, pe)
				}
				return
			}
			if err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			var want Instance
			if err := json.Unmarshal(v.Expect, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, want) {
				t.Fatalf("got %+v\nwant %+v", in, want)
			}
		})
	}
}

func TestLeavingIsParsed(t *testing.T) {
	in, err := ParseInstance([]byte(`{"service":"a","host":"h","port":1,"leaving":true}`), "/soa/services/a/h:1", "/soa")
	if err != nil || !in.Leaving {
		t.Fatalf("got %+v, %v", in, err)
	}
}

func TestFieldOrderFirstFaultWins(t *testing.T) {
	// the port's type is checked before the protocol's value
	_, err := ParseInstance([]byte(`{"service":"a","host":"h","port":"1","protocol":"x"}`), "", "")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Code != ErrBadType {
		t.Fatalf("got %v", err)
	}
	_, err = ParseInstance([]byte(`{"service":"a","host":"h","port":1} x`), "", "")
	if !errors.As(err, &pe) || pe.Code != ErrNotJSON {
		t.Fatalf("trailing data: got %v", err)
	}
}
