#!/usr/bin/env python3
"""Documents how the test payloads embedded in build-images.sh were made (not run by CI).

Each payload is a tiny static x86-64 ELF with no libc: write(1, MARKER) then exit(0).
Being hand-assembled it is byte-for-byte the same on every machine, so its sha256 is a constant
that tests and test intel feeds can rely on. Prints `name sha256 base64` for each payload.
"""
import base64
import hashlib
import struct

PAYLOADS = {
    "ward-test-payload": b"WARD-TEST-PAYLOAD: harmless stand-in for a malicious binary (Ward test suite)\n",
    "ward-test-payload-added": b"WARD-TEST-PAYLOAD-ADDED: harmless stand-in for a dropped binary (Ward test suite)\n",
}


def make_elf(msg: bytes) -> bytes:
    base, code_off = 0x400000, 64 + 56  # ELF header + one program header
    code = b"\xb8\x01\x00\x00\x00"  # mov eax, 1 (write)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1 (stdout)
    lea_pos = len(code)
    code += b"\x48\x8d\x35\x00\x00\x00\x00"  # lea rsi, [rip + msg]
    code += b"\xba" + struct.pack("<I", len(msg))  # mov edx, len
    code += b"\x0f\x05"  # syscall
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60 (exit)
    code += b"\x31\xff"  # xor edi, edi
    code += b"\x0f\x05"  # syscall
    rel = len(code) - (lea_pos + 7)
    code = code[: lea_pos + 3] + struct.pack("<i", rel) + code[lea_pos + 7 :]
    body = code + msg
    filesz = code_off + len(body)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + code_off, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, filesz, filesz, 0x1000)  # PT_LOAD R+X
    return ehdr + phdr + body


if __name__ == "__main__":
    for name, msg in PAYLOADS.items():
        elf = make_elf(msg)
        print(name, hashlib.sha256(elf).hexdigest(), base64.b64encode(elf).decode())
