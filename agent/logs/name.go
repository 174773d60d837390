package logs

import (
	"fmt"
	"strconv"
	"strings"
)

// dirName maps a unit name to the name of its log directory. Unit names are
// almost always safe file names already (systemd itself escapes "/" as "-"
// and odd bytes as `\xNN`), so those characters are kept verbatim and the
// directory stays readable with ls; anything else becomes %XX. Names that
// could walk out of the log directory are refused rather than escaped, since
// no valid unit has them.
func dirName(unit string) (string, error) {
	if unit == "" || unit == "." || strings.Contains(unit, "/") || strings.Contains(unit, "..") {
		return "", fmt.Errorf("invalid unit name %q for the log store", unit)
	}
	var sb strings.Builder
	for i := 0; i < len(unit); i++ {
		c := unit[i]
		if safeByte(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteString(strconv.FormatUint(uint64(c)>>4, 16))
		sb.WriteString(strconv.FormatUint(uint64(c)&15, 16))
	}
	if sb.Len() > 255 {
		return "", fmt.Errorf("unit name %q is too long for the log store", unit)
	}
	return sb.String(), nil
}

func safeByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(":_.@-\\+=,~", c) >= 0
}

// unitName reverses dirName; ok is false for directories we did not create.
func unitName(dir string) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(dir); i++ {
		c := dir[i]
		if c != '%' {
			if !safeByte(c) {
				return "", false
			}
			sb.WriteByte(c)
			continue
		}
		if i+2 >= len(dir) {
			return "", false
		}
		v, err := strconv.ParseUint(dir[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		sb.WriteByte(byte(v))
		i += 2
	}
	name := sb.String()
	if d, err := dirName(name); err != nil || d != dir {
		return "", false
	}
	return name, true
}
