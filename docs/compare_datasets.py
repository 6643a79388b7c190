"""Compare two HDF5 dataset files dataset by dataset: same names, dtypes, shapes and bytes.

    python docs/compare_datasets.py A.h5 B.h5 [--ignore-attr versions --ignore-attr config ...]

Used to show that a refactor changed no data: it prints one line per difference (datasets, groups, and
attributes other than the ignored ones) and exits 1 if there is any, else prints a summary and exits 0.
"""

from __future__ import annotations

import argparse
import sys

import h5py
import numpy as np


def _items(f: h5py.File) -> dict[str, h5py.HLObject]:
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj))
    return out


def _attrs_equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def compare(path_a: str, path_b: str, ignore_attrs: set[str]) -> tuple[list[str], int]:
    """(differences, number of datasets compared)."""
    diffs: list[str] = []
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        a, b = _items(fa), _items(fb)
        for name in sorted(set(a) ^ set(b)):
            diffs.append(f"only in {'A' if name in a else 'B'}: {name}")
        n = 0
        for name in sorted(set(a) & set(b)):
            x, y = a[name], b[name]
            if isinstance(x, h5py.Dataset) != isinstance(y, h5py.Dataset):
                diffs.append(f"{name}: a dataset in one file, a group in the other")
                continue
            if isinstance(x, h5py.Dataset):
                n += 1
                if x.dtype != y.dtype or x.shape != y.shape:
                    diffs.append(f"{name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
                elif np.asarray(x[()]).tobytes() != np.asarray(y[()]).tobytes():
                    diffs.append(f"{name}: values differ")
            for key in sorted(set(x.attrs) | set(y.attrs)):
                if key in ignore_attrs:
                    continue
                if key not in x.attrs or key not in y.attrs or not _attrs_equal(x.attrs[key], y.attrs[key]):
                    diffs.append(f"{name}: attribute {key} differs")
        for key in sorted(set(fa.attrs) | set(fb.attrs)):
            if key not in ignore_attrs and (key not in fa.attrs or key not in fb.attrs
                                            or not _attrs_equal(fa.attrs[key], fb.attrs[key])):
                diffs.append(f"file attribute {key} differs")
    return diffs, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ignore-attr", action="append", default=[], help="an attribute name not to compare")
    args = p.parse_args(argv)
    diffs, n = compare(args.a, args.b, set(args.ignore_attr))
    for d in diffs:
        print(d)
    print(f"{n} datasets compared, {len(diffs)} differences" + (f" (ignored attributes: {', '.join(args.ignore_attr)})"
                                                             if args.ignore_attr else ""))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
