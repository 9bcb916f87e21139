"""Print what the library does with each kind of difficult input, by running it on files made here.

Each input is made in a temporary folder; image files are passed with one real image beside
them. The table shows the error raised
(``on_error="raise"``) or the DNA made and the skip record (``on_error="skip"``).

    python scripts/bad_inputs_report.py ../shared/data/set14/baboon.jpg
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from vdna import VDNAProcessor


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def huge_png() -> bytes:
    raw = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    header = struct.pack(">II", 100_000, 100_000) + raw[24:29]
    raw[16:29] = header
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(raw)


def cases(real: Path, folder: Path) -> dict[str, object]:
    """Input label -> source to make a DNA of."""
    photo = Image.open(real).convert("RGB")
    made: dict[str, object] = {}

    def file(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    made["truncated JPEG"] = file("truncated.jpg", encoded(photo, "JPEG")[:2000])
    made["zero-byte file"] = file("zero.jpg", b"")
    made["text file named .jpg"] = file("text.jpg", b"hello\n")
    made["header declaring 100000x100000"] = file("huge.png", huge_png())
    frames = [photo, photo.rotate(90)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    made["animated GIF"] = file("anim.gif", gif.getvalue())
    made["CMYK JPEG"] = file("cmyk.jpg", encoded(photo.convert("CMYK"), "JPEG"))
    deep = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    made["16-bit PNG"] = file("deep.png", encoded(Image.fromarray(deep), "PNG"))
    made["grayscale"] = file("grey.png", encoded(photo.convert("L"), "PNG"))
    made["palette with transparency"] = file("palette.png", encoded(photo.convert("P"), "PNG", transparency=0))
    made["RGBA"] = file("rgba.png", encoded(photo.convert("RGBA"), "PNG"))
    exif = photo.getexif()
    exif[0x0112] = 6
    made["EXIF-rotated JPEG"] = file("rotated.jpg", encoded(photo, "JPEG", exif=exif))
    made["1x1 image"] = file("dot.png", encoded(photo.resize((1, 1)), "PNG"))
    made["1x4000 image"] = file("line.png", encoded(photo.resize((1, 4000)), "PNG"))
    odd = os.fsencode(folder) + b"/caf\xe9.jpg"
    with open(odd, "wb") as handle:
        handle.write(real.read_bytes())
    made["non-UTF-8 file name"] = [os.fsdecode(odd)]
    loop = folder / "loop"
    loop.mkdir()
    (loop / "a.jpg").write_bytes(real.read_bytes())
    os.symlink(loop, loop / "again")
    made["symlink loop in a folder"] = loop
    (folder / "empty").mkdir()
    made["empty folder"] = folder / "empty"
    with zipfile.ZipFile(folder / "empty.zip", "w"):
        pass
    made["empty zip"] = folder / "empty.zip"
    made["empty .txt index"] = file("empty.txt", b"# nothing\n")
    made["index naming missing files"] = file("missing.txt", b"a.jpg\nnope1.jpg\nnope2.png\n")
    with zipfile.ZipFile(folder / "evil.zip", "w") as handle:
        handle.writestr("../../outside.jpg", real.read_bytes())
    made["zip member named ../../outside.jpg"] = folder / "evil.zip"
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, help="one real photograph")
    args = parser.parse_args()
    processor = VDNAProcessor()
    print("| input | on_error=\"raise\" | on_error=\"skip\" |\n| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for label, source in cases(args.image.resolve(), folder).items():
            results = []
            for policy in ("raise", "skip"):
                alone = isinstance(source, Path) and source.suffix not in (".zip", ".txt", "")
                single = [source, args.image] if alone else source  # each image file beside a good one
                try:
                    vdna = processor.make_vdna(single, verbose=False, num_workers=0, on_error=policy)
                    skipped = "; ".join(f"skipped: {entry['reason']}" for entry in vdna.provenance.skipped)
                    results.append(f"DNA of {vdna.num_images} image(s)" + (f", {skipped}" if skipped else ""))
                except (ValueError, FileNotFoundError, OSError) as error:
                    results.append(f"`{type(error).__name__}: {str(error).replace(temporary, '<tmp>')}`")
            print(f"| {label} | {results[0]} | {results[1]} |")
        written = [p for p in folder.parent.glob("outside.jpg")]
        print(f"\nfiles written outside the temporary folder by the zip: {len(written)}")


if __name__ == "__main__":
    main()
