"""Keeps only one GPU architecture's machine code in a CUDA library: zeroes the payload of every other cubin in
its .nv_fatbin section (headers untouched, so the CUDA runtime still parses it and picks the kept one). Zeroed
bytes compress to nothing, which makes ONNX Runtime's CUDA provider (284 MB) small enough to send to a GPU
machine. Only for machines of that architecture.

Usage: fatbin_keep.py LIBRARY SM   (e.g. 90 for H100/H200; rewrites LIBRARY in place)
"""
import struct
import subprocess
import sys

MAGIC = 0xBA55ED50
KIND_ELF = 2


def section(path, name):
    for line in subprocess.check_output(["readelf", "-S", "-W", path]).decode().splitlines():
        if f" {name} " in line:
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    raise SystemExit(f"{path} has no {name} section")


def entries(data, offset, size):
    pos, end = offset, offset + size
    while pos < end:
        magic, _version, header, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != MAGIC:
            pos += 8
            continue
        e, e_end = pos + header, pos + header + fat_size
        while e < e_end:
            kind, _v, entry_header, padded = struct.unpack_from("<HHIQ", data, e)
            sm = struct.unpack_from("<I", data, e + 28)[0]
            yield kind, sm, e + entry_header, padded
            e += entry_header + padded
        pos = e_end


def main():
    path, keep = sys.argv[1], int(sys.argv[2])
    data = bytearray(open(path, "rb").read())
    offset, size = section(path, ".nv_fatbin")
    kept = zeroed = 0
    for kind, sm, start, padded in list(entries(data, offset, size)):
        if kind == KIND_ELF and sm != keep:
            data[start:start + padded] = bytes(padded)
            zeroed += padded
        else:
            kept += padded
    if kept == 0:
        raise SystemExit(f"{path} has no code for sm_{keep}: nothing would run")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    import os
    os.replace(path + ".tmp", path)
    print(f"{path}: kept {kept / 1e6:.0f} MB for sm_{keep}, zeroed {zeroed / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
