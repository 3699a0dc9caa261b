//go:build linux

// Package smaps reads this process's memory mappings from /proc/self/smaps,
// for tests that check how a buffer is mapped (MADV_DONTDUMP, mlock).
package smaps

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// VmFlags returns the kernel's VmFlags of the mapping that holds b[0]
// ("dd": left out of core dumps, "lo": locked in RAM, ...).
func VmFlags(b []byte) ([]string, error) {
	return VmFlagsAt(uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))))
}

// VmFlagsAt returns the VmFlags of the mapping that holds addr.
func VmFlagsAt(addr uint64) ([]string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no mapping holds %#x", addr)
}

// mappingRange parses a mapping's first line, "lo-hi perms offset ...".
func mappingRange(line string) (lo, hi uint64, ok bool) {
	r, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 16, 64)
	hi, err2 := strconv.ParseUint(b, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}
