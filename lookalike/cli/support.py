"""What every command module shares: click's context settings and the progress bar on stderr."""

from __future__ import annotations

import sys

#: Context settings of every command: `-h` too, and wide help.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class ProgressBar:
    """A tqdm bar on stderr fed by a run's `Progress` calls (`start`, `advance`): files, faces, faces/s."""

    def __init__(self, desc: str, unit: str = "photo", disabled: bool = False) -> None:
        self.desc, self.unit, self.disabled = desc, unit, disabled
        self.bar = None
        self.faces = 0

    def start(self, total_files: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_files, unit=self.unit, desc=self.desc, disable=self.disabled, file=sys.stderr)

    def advance(self, files: int, faces: int) -> None:
        self.faces += faces
        if self.bar is not None:
            rate = self.faces / max(self.bar.format_dict["elapsed"], 1e-9)
            self.bar.set_postfix(faces=self.faces, faces_s=f"{rate:.1f}", refresh=False)
            self.bar.update(files)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
