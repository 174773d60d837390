package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	corralv1 "corral.io/corral/api/corral/v1"
)

func logsCmd(a *app) *cobra.Command {
	var unit, since string
	var follow bool
	var n int
	c := &cobra.Command{
		Use:   "logs [-u UNIT] [-f] [-n N] [--since TIME]",
		Short: "Show the logs of a unit (or of all units)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &corralv1.LogsRequest{Follow: follow, N: int32(n)}
			if unit != "" {
				req.Unit = mangle(unit, ".service")
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return exitf(exitFailure, "Failed to parse --since %q: %v", since, err)
				}
				req.Since = timestamppb.New(t)
			}
			err := a.readLogs(cmd.Context(), req, func(e *corralv1.LogEntry) error {
				if a.json() {
					// One object per line, like journalctl -o json, so -f works.
					v, err := jsonValue(e)
					if err != nil {
						return err
					}
					return writeJSONLine(a.stdout, v)
				}
				_, err := fmt.Fprintln(a.stdout, formatLog(e))
				return err
			})
			if err != nil {
				return a.rpcError("read logs", err)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&unit, "unit", "u", "", "unit whose logs to show")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new entries")
	c.Flags().IntVarP(&n, "lines", "n", 0, "show only the last N entries (0 = all)")
	c.Flags().StringVar(&since, "since", "", `show entries since TIME: RFC3339, "2006-01-02 15:04:05", "-5m", "1h ago", "today", "yesterday"`)
	return c
}

var relTime = regexp.MustCompile(`^\s*(\d+)\s*([a-zA-Z]+)\s*`)

// parseSince understands the forms journalctl users type.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "now":
		return now, nil
	case "today":
		y, m, d := now.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, now.Location()), nil
	case "yesterday":
		y, m, d := now.Date()
		return time.Date(y, m, d-1, 0, 0, 0, 0, now.Location()), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	rel := s
	switch {
	case strings.HasPrefix(rel, "-"):
		rel = rel[1:]
	case strings.HasSuffix(rel, " ago"):
		rel = strings.TrimSuffix(rel, " ago")
	default:
		return time.Time{}, fmt.Errorf("not a time")
	}
	d, err := parseSpan(rel)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(-d), nil
}

// parseSpan parses systemd time spans: "5m", "1h 30min", "2 days", "90s".
func parseSpan(s string) (time.Duration, error) {
	var total time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("empty time span")
	}
	for rest != "" {
		m := relTime.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("bad time span %q", s)
		}
		n, _ := strconv.Atoi(m[1])
		var unit time.Duration
		switch strings.ToLower(m[2]) {
		case "ms", "msec":
			unit = time.Millisecond
		case "s", "sec", "secs", "second", "seconds":
			unit = time.Second
		case "m", "min", "mins", "minute", "minutes":
			unit = time.Minute
		case "h", "hr", "hour", "hours":
			unit = time.Hour
		case "d", "day", "days":
			unit = 24 * time.Hour
		case "w", "week", "weeks":
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("unknown time unit %q in %q", m[2], s)
		}
		total += time.Duration(n) * unit
		rest = rest[len(m[0]):]
	}
	return total, nil
}
