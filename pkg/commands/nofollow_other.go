//go:build !unix

package commands

const noFollow = 0
