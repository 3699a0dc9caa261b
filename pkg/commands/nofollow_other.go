//go:build !unix

package commands

const noFollow = 0

const nonBlock = 0
