"""Write the bad-input corpus of tests/test_bad_input.py (run from anywhere; the files are
committed, this script documents how each was made and rebuilds them).

Every file starts from good frames of ``tests/data/si_tiny_train.xyz`` (Si, extended XYZ
with ``energy``/``forces``) and breaks exactly one thing, at a known frame (0-based):

=========================  =====  ==================================================
file                       frame  what is wrong
=========================  =====  ==================================================
truncated.xyz              3      the file ends in the middle of the frame
wrong_atom_count.xyz       2      header says 3 atoms, the frame has 2
non_numeric.xyz            2      a position reads ``1.93O79748`` (letter O)
no_energy.xyz              2      no ``energy=`` in the comment line
no_forces.xyz              2      no ``forces`` column
nan_energy.xyz             3      ``energy=nan``
inf_forces.xyz             1      a force component is ``inf``
per_atom_energies.xyz      -      energies are per atom, not totals (a warning)
with_carbon.xyz            1      a C atom (absent from the Si training data)
empty.xyz                  -      zero bytes
=========================  =====  ==================================================
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "si_tiny_train.xyz"


def frames_text(path: Path) -> list[list[str]]:
    """The frames of an XYZ file as lists of lines (count line, comment, atoms)."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        out.append(lines[i : i + n + 2])
        i += n + 2
    return out


def join(frames: list[list[str]]) -> str:
    return "\n".join(line for f in frames for line in f) + "\n"


def main() -> None:
    src = frames_text(SOURCE)
    good = [list(f) for f in src[1:7]]  # six 2-atom diamond frames

    def fresh():
        return [list(f) for f in good]

    # truncated: frame 3 stops after its first atom line
    f = fresh()[:4]
    f[3] = f[3][:3]
    (HERE / "truncated.xyz").write_text(join(f))

    # wrong atom count: frame 2 claims 3 atoms
    f = fresh()
    f[2][0] = "3"
    (HERE / "wrong_atom_count.xyz").write_text(join(f))

    # non-numeric field: frame 2, atom 1, x coordinate
    f = fresh()
    f[2][3] = f[2][3].replace("1.93079", "1.93O79", 1)
    assert "1.93O79" in f[2][3]
    (HERE / "non_numeric.xyz").write_text(join(f))

    # no energy in frame 2
    f = fresh()
    f[2][1] = " ".join(w for w in f[2][1].split(" ") if not w.startswith("energy="))
    (HERE / "no_energy.xyz").write_text(join(f))

    # no forces in frame 2 (drop the forces column and the last three numbers of each atom)
    f = fresh()
    f[2][1] = f[2][1].replace(":forces:R:3", "")
    f[2][2:] = [" ".join(line.split()[:4]) for line in f[2][2:]]
    (HERE / "no_forces.xyz").write_text(join(f))

    # NaN energy in frame 3
    f = fresh()
    f[3][1] = " ".join("energy=nan" if w.startswith("energy=") else w for w in f[3][1].split(" "))
    (HERE / "nan_energy.xyz").write_text(join(f))

    # inf force component in frame 1, atom 0
    f = fresh()
    parts = f[1][2].split()
    parts[5] = "inf"
    f[1][2] = "  ".join(parts)
    (HERE / "inf_forces.xyz").write_text(join(f))

    # per-atom energies: isolated atom, 2-atom and 64-atom frames with energy / n_atoms
    f = [list(src[0]), list(src[1]), list(src[2]), list(src[-1])]
    for fr in f:
        n = int(fr[0])
        words = []
        for w in fr[1].split(" "):
            if w.startswith("energy="):
                w = f"energy={float(w.split('=')[1]) / n:.8f}"
            words.append(w)
        fr[1] = " ".join(words)
    (HERE / "per_atom_energies.xyz").write_text(join(f))

    # a species absent from the training data: frame 1, atom 1 is carbon
    f = fresh()[:3]
    f[1][3] = "C " + f[1][3][2:]
    (HERE / "with_carbon.xyz").write_text(join(f))

    (HERE / "empty.xyz").write_text("")


if __name__ == "__main__":
    main()
