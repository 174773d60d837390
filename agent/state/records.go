package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record versions. Bump one when a field changes meaning, and teach the
// decoder the old one, so that a live upgrade can read its predecessor's
// records.
const (
	UnitRecordVersion = 1
	JobRecordVersion  = 1
)

// UnitRecord is what a new agent needs to re-adopt a unit: its state and the
// processes it was running, identified by PID and start time so that a
// reused PID is not mistaken for the old process.
type UnitRecord struct {
	Name            string
	ActiveState     string
	SubState        string
	Result          string
	MainPID         int
	MainPIDStart    uint64
	ControlPID      int
	ControlPIDStart uint64
	Cgroup          string
	InvocationID    string
	ExecMainCode    int
	ExecMainStatus  int
	NRestarts       int
	StateChange     time.Time
	StatusText      string
	Version         int
}

// JobRecord is a queued or running job, so that a restarted agent can finish
// or fail it instead of forgetting it.
type JobRecord struct {
	ID      uint64
	Unit    string
	Type    string
	Mode    string
	State   string
	Created time.Time
	Version int
}

func jobKey(id uint64) string { return fmt.Sprintf("%016x", id) }

// decodeUnit checks everything a reader relies on, so that a damaged record
// is an error here rather than a surprise later.
func decodeUnit(key string, data []byte) (UnitRecord, error) {
	var r UnitRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return UnitRecord{}, fmt.Errorf("unit record %q: %w", key, err)
	}
	switch {
	case r.Version < 1 || r.Version > UnitRecordVersion:
		return UnitRecord{}, fmt.Errorf("unit record %q: unsupported version %d", key, r.Version)
	case r.Name != key:
		return UnitRecord{}, fmt.Errorf("unit record %q: holds unit %q", key, r.Name)
	}
	return r, nil
}

func decodeJob(key string, data []byte) (JobRecord, error) {
	var r JobRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return JobRecord{}, fmt.Errorf("job record %q: %w", key, err)
	}
	switch {
	case r.Version < 1 || r.Version > JobRecordVersion:
		return JobRecord{}, fmt.Errorf("job record %q: unsupported version %d", key, r.Version)
	case jobKey(r.ID) != key:
		return JobRecord{}, fmt.Errorf("job record %q: holds job %d", key, r.ID)
	}
	return r, nil
}

// PutUnit stores r (keyed by r.Name), committed when it returns.
func (d *DB) PutUnit(r UnitRecord) error {
	if r.Name == "" {
		return errors.New("state: put unit: empty name")
	}
	r.Version = UnitRecordVersion
	return d.Put(BucketUnits, r.Name, r)
}

// Unit returns the record of one unit. A record that does not decode is an
// error naming the unit.
func (d *DB) Unit(name string) (UnitRecord, bool, error) {
	data, err := d.getRaw(BucketUnits, name)
	if err != nil || data == nil {
		return UnitRecord{}, false, err
	}
	r, err := decodeUnit(name, data)
	if err != nil {
		return UnitRecord{}, false, fmt.Errorf("state: %w", err)
	}
	return r, true, nil
}

// Units returns every unit record that decodes, in name order. Records that
// do not decode are logged and skipped: one damaged record must not cost the
// agent every other unit's state.
func (d *DB) Units() ([]UnitRecord, error) {
	var out []UnitRecord
	err := d.List(BucketUnits, func(k string, data json.RawMessage) error {
		r, err := decodeUnit(k, data)
		if err != nil {
			d.log.Error("state: skipping undecodable record", "path", d.path, "bucket", BucketUnits, "key", k, "err", err)
			return nil
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// DeleteUnit removes a unit's record; a missing one is not an error.
func (d *DB) DeleteUnit(name string) error { return d.Delete(BucketUnits, name) }

// PutJob stores r (keyed by r.ID), committed when it returns.
func (d *DB) PutJob(r JobRecord) error {
	r.Version = JobRecordVersion
	return d.Put(BucketJobs, jobKey(r.ID), r)
}

// DeleteJob removes a job's record; a missing one is not an error.
func (d *DB) DeleteJob(id uint64) error { return d.Delete(BucketJobs, jobKey(id)) }

// Jobs returns every job record that decodes, in ID order; others are logged
// and skipped.
func (d *DB) Jobs() ([]JobRecord, error) {
	var out []JobRecord
	err := d.List(BucketJobs, func(k string, data json.RawMessage) error {
		r, err := decodeJob(k, data)
		if err != nil {
			d.log.Error("state: skipping undecodable record", "path", d.path, "bucket", BucketJobs, "key", k, "err", err)
			return nil
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// scan logs the undecodable records at open.
func (d *DB) scan() {
	if _, err := d.Units(); err != nil {
		d.log.Error("state: reading unit records", "path", d.path, "err", err)
	}
	if _, err := d.Jobs(); err != nil {
		d.log.Error("state: reading job records", "path", d.path, "err", err)
	}
}
