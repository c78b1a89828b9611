"""A sparse matrix with a few entries per row: the time axis of a separable operator, for any length.

A temporal degradation touches each measured frame with a handful of signal
frames (4 for 4x pooling, 7 for a 7-frame blur), so its matrix is a band: row j
holds ``width`` (column, weight) pairs, unused slots weigh zero. Stored that way
an hour of video (108,000 frames) takes a few megabytes where the dense matrix
would take tens of gigabytes, building it is a handful of vectorised tensor
operations, and a window's rows and columns are cut out without scanning the
whole matrix. A dense copy is made only where a window-sized matrix is wanted
(the closed-form prox of a window, the whole clip of a short video).

Rows are kept coalesced: each column at most once per row, ascending, zero
weights dropped (the unused slots at the end of the row).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

PADDINGS = ("reflect", "replicate", "circular", "zeros")
DENSE_LIMIT = 1 << 22  # entries of a dense copy worth keeping (32 MB in float64)


def pad_indices(i: Tensor, n: int, mode: str) -> Tensor:
    """For positions ``i`` of a padded length-n signal, the sample each reads (-1: a zero)."""
    if mode == "zeros":
        return torch.where((i >= 0) & (i < n), i, torch.full_like(i, -1))
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "circular":
        return i.remainder(n)
    if mode == "reflect":  # mirror without repeating the edge sample, as torch's "reflect"
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = i.remainder(period)
        return torch.where(i < n, i, period - i)
    raise ValueError(f"padding={mode!r} is not one of {PADDINGS}")


class Band:
    """An (rows x cols) matrix whose row j is sum_l weight[j, l] * e_{index[j, l]}."""

    def __init__(self, index: Tensor, weight: Tensor, cols: int, coalesced: bool = False):
        if not coalesced:
            index, weight = _coalesce(index, weight)
        self.index, self.weight, self.cols = index, weight, cols
        self._dense: Tensor | None = None
        self._rows = None
        self._cast: dict = {}  # (dtype, device, transposed) -> the dense matrix cast (small bands only)
        self._single: tuple[Tensor, Tensor] | bool | None = None  # see _single_rows

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def conv(cls, n: int, kernel: Tensor, stride: int, pad_left: int, mode: str, rows: int | None = None) -> "Band":
        """A padded 1-D convolution followed by subsampling: (ceil(n / stride), n), or ``rows`` rows.

        Row j computes sum_k kernel[L-1-k] * x[pad(j * stride + k - pad_left)], a
        true convolution (flipped kernel) of the padded signal, sampled every
        ``stride`` samples from 0.
        """
        flipped = kernel.to(torch.float64).flip(0)
        rows = -(-n // stride) if rows is None else rows
        pos = torch.arange(rows).unsqueeze(1) * stride + torch.arange(flipped.numel()).unsqueeze(0) - pad_left
        index = pad_indices(pos, n, mode)
        weight = flipped.expand(rows, -1).clone()
        weight[index < 0] = 0
        return cls(index.clamp_min(0), weight, n)

    @classmethod
    def from_dense(cls, matrix: Tensor) -> "Band":
        m = matrix.to(torch.float64)
        row, col = torch.nonzero(m, as_tuple=True)
        return cls._from_entries(row, col, m[row, col], m.shape[0], m.shape[1])

    @classmethod
    def _from_entries(cls, row: Tensor, col: Tensor, weight: Tensor, rows: int, cols: int) -> "Band":
        """Entries (row, col, weight), sorted by row, into the band layout."""
        counts = torch.bincount(row, minlength=rows)
        width = max(1, int(counts.max())) if rows and row.numel() else 1
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(row.numel()) - start[row]
        index = torch.zeros(rows, width, dtype=torch.long)
        out = torch.zeros(rows, width, dtype=torch.float64)
        index[row, slot] = col
        out[row, slot] = weight.to(torch.float64)
        return cls(index, out, cols)

    def transpose(self) -> "Band":
        valid = self.weight != 0
        row = torch.arange(self.rows).unsqueeze(1).expand_as(self.index)[valid]
        col, weight = self.index[valid], self.weight[valid]
        order = torch.argsort(col, stable=True)
        return Band._from_entries(col[order], row[order], weight[order], self.cols, self.rows)

    # -- facts -------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.index.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def extents(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per row: its first and last column with a non-zero weight, and how many such columns."""
        if self._rows is None:
            nonzero = self.weight != 0
            count = nonzero.sum(1)
            big = torch.full_like(self.index, self.cols)
            first = torch.where(nonzero, self.index, big).amin(1)
            last = torch.where(nonzero, self.index, torch.full_like(self.index, -1)).amax(1)
            self._rows = (first, last, count)
        return self._rows

    def supports(self) -> list[tuple[int, int] | None]:
        """Per row, the columns [lo, hi) it depends on when they are contiguous, else None (it wraps around)."""
        first, last, count = self.extents()
        contiguous = (count > 0) & (last - first + 1 == count)
        return [(lo, hi + 1) if ok else None for lo, hi, ok in zip(first.tolist(), last.tolist(), contiguous.tolist())]

    # -- parts -------------------------------------------------------------------------------
    def dense(self) -> Tensor:
        """The (rows, cols) float64 matrix."""
        if self._dense is not None:
            return self._dense
        out = torch.zeros(self.rows, self.cols, dtype=torch.float64)
        out.scatter_add_(1, self.index, self.weight)
        if self.rows * self.cols <= DENSE_LIMIT:
            self._dense = out
        return out

    def take(self, rows: Tensor, cols: Tensor) -> Tensor:
        """The dense block of ``rows`` x ``cols`` (any columns, in the order given)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        cols = torch.as_tensor(cols, dtype=torch.long)
        where = torch.full((self.cols,), -1, dtype=torch.long)
        where[cols] = torch.arange(cols.numel())
        index, weight = self.index[rows], self.weight[rows]
        at = where[index]
        keep = (at >= 0) & (weight != 0)
        out = torch.zeros(rows.numel(), cols.numel(), dtype=torch.float64)
        out.scatter_add_(1, at.clamp_min(0), torch.where(keep, weight, torch.zeros_like(weight)))
        return out

    def restrict(self, rows: Tensor, start: int, end: int) -> "Band":
        """Rows ``rows`` on columns [start, end) only, as a band of end - start columns."""
        index, weight = self.index[rows], self.weight[rows]
        inside = (index >= start) & (index < end)
        return Band((index - start).clamp(0, max(0, end - start - 1)), torch.where(inside, weight, 0 * weight),
                    end - start)

    def compose(self, inner: "Band") -> "Band":
        """self @ inner."""
        if self.cols != inner.rows:
            raise ValueError(f"cannot compose: inner gives {inner.rows} samples, outer expects {self.cols}")
        index = inner.index[self.index]  # (m, L_outer, L_inner)
        weight = self.weight.unsqueeze(2) * inner.weight[self.index]
        return Band(index.flatten(1), weight.flatten(1), inner.cols)

    def gram(self) -> "Band":
        """M M^T, a band again (rows x rows)."""
        return self.compose(self.transpose())

    def subset(self, rows: Tensor) -> "Band":
        return Band(self.index[rows], self.weight[rows], self.cols, coalesced=True)

    # -- products along an axis of a tensor --------------------------------------------------
    def _dense_as(self, like: Tensor, transposed: bool) -> Tensor:
        key = (like.dtype, like.device, transposed)
        if key not in self._cast:
            m = self.dense()
            self._cast[key] = (m.transpose(0, 1) if transposed else m).to(like.device, like.dtype).contiguous()
        return self._cast[key]

    def apply(self, x: Tensor, axis: int) -> Tensor:
        """M along ``axis`` of x (length cols -> rows)."""
        if self.rows * self.cols <= DENSE_LIMIT:
            return along(x, self._dense_as(x, False), axis)
        index, weight = self.index.to(x.device), self.weight.to(x.device, x.dtype)
        shape = [1] * x.dim()
        shape[axis] = -1
        out = None
        for slot in range(index.shape[1]):
            part = x.index_select(axis, index[:, slot]) * weight[:, slot].view(shape)
            out = part if out is None else out.add_(part)
        return out

    def apply_transpose(self, y: Tensor, axis: int) -> Tensor:
        """M^T along ``axis`` of y (length rows -> cols).

        Where each column is in one row at most (frames dropped or pooled: every
        signal frame feeds one measured frame), M^T is a gather and a scale: output
        frame c is weight(c) times measured frame row(c), written once (a dense
        product of the same band took 2.5x longer on a 24-frame window).
        """
        single = self._single_rows() if self.rows else None
        if single is not None:
            rows, weight = single
            shape = [1] * y.dim()
            shape[axis] = -1
            return y.index_select(axis, rows.to(y.device)).mul_(weight.to(y.device, y.dtype).view(shape))
        if self.rows * self.cols <= DENSE_LIMIT:
            return along(y, self._dense_as(y, True), axis)
        index, weight = self.index.to(y.device), self.weight.to(y.device, y.dtype)
        shape = [1] * y.dim()
        shape[axis] = -1
        size = list(y.shape)
        size[axis] = self.cols
        out = y.new_zeros(size)
        for slot in range(index.shape[1]):
            out.index_add_(axis, index[:, slot], y * weight[:, slot].view(shape))
        return out

    def _single_rows(self) -> tuple[Tensor, Tensor] | None:
        """(row, weight) per column where no column is in two rows (row 0 and weight 0 for a column in none),
        else None."""
        if self._single is None:
            valid = self.weight != 0
            cols = self.index[valid]
            if cols.numel() and torch.bincount(cols, minlength=self.cols).max() > 1:
                self._single = False
            else:
                rows = torch.arange(self.rows).unsqueeze(1).expand_as(self.index)[valid]
                row_of = torch.zeros(self.cols, dtype=torch.long)
                weight_of = torch.zeros(self.cols, dtype=torch.float64)
                row_of[cols], weight_of[cols] = rows, self.weight[valid]
                self._single = (row_of, weight_of)
        return self._single or None

    def __repr__(self) -> str:
        return f"Band({self.rows}x{self.cols}, width {self.index.shape[1]})"


class Blocked:
    """A dense matrix whose non-zeros lie along its diagonal (a filter with a stride), applied ``block`` rows
    at a time to the run of columns those rows touch.

    A 4x bicubic downscale of 640 samples holds 16 taps a row: as one dense
    product it costs 640 multiply-adds per output, in blocks of 16 rows about 76.
    Built by ``of`` only where it saves more than half of the dense product's work;
    the result equals the dense product's to float rounding (only exact zeros are
    left out).
    """

    def __init__(self, matrix: Tensor, block: int):
        self.shape = tuple(matrix.shape)
        nonzero = matrix != 0
        self.parts = []  # (first row, first column, the block's dense part)
        for r0 in range(0, self.shape[0], block):
            cols = torch.nonzero(nonzero[r0:r0 + block].any(0)).flatten()
            c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (0, 1)
            self.parts.append((r0, c0, matrix[r0:r0 + block, c0:c1].contiguous()))

    @classmethod
    def of(cls, matrix: Tensor, block: int = 16) -> "Blocked | Tensor":
        """The blocked form where the matrix shortens the axis and the blocks hold less than half of its
        entries, else the matrix itself. (Widening an axis, A^T, the dense product was faster: its inner
        dimension is the short one, and blocks would write the long output in narrow strided pieces.)"""
        if matrix.shape[0] >= matrix.shape[1]:
            return matrix
        blocked = cls(matrix, block)
        work = sum(part.numel() for _, _, part in blocked.parts)
        return blocked if 2 * work < matrix.numel() else matrix

    def apply(self, x: Tensor, axis: int) -> Tensor:
        """This matrix along ``axis`` of x (length cols -> rows)."""
        axis = axis % x.dim()
        x = x.contiguous()
        shape = list(x.shape)
        shape[axis] = self.shape[0]
        out = x.new_empty(shape)
        lead = math.prod(x.shape[:axis])
        last = axis == x.dim() - 1
        for r0, c0, part in self.parts:
            piece, into = x.narrow(axis, c0, part.shape[1]), out.narrow(axis, r0, part.shape[0])
            if last:  # rows of x times part^T, straight into the output's columns (strided views: no copies)
                torch.mm(piece.reshape(-1, part.shape[1]), part.transpose(0, 1), out=into.reshape(-1, part.shape[0]))
            else:  # part times each (columns, rest) slab of x, straight into the output's slabs
                torch.matmul(part, piece.reshape(lead, part.shape[1], -1),
                             out=into.reshape(lead, part.shape[0], -1))
        return out


def along(x: Tensor, M: Tensor, axis: int) -> Tensor:
    """Multiply axis ``axis`` of x by the dense matrix M (one product over a contiguous view).

    The last axis is one matrix product, x (rows, n) @ M^T; another axis a batched
    product M @ x (lead, n, rest). (The last axis as a batch of matrix-vector
    products (lead, n, 1) took 40x longer.)
    """
    if x.is_contiguous():
        shape = x.shape
        axis = axis % x.dim()
        if axis == x.dim() - 1:
            return (x.reshape(-1, shape[axis]) @ M.transpose(0, 1)).reshape(*shape[:axis], M.shape[0])
        lead, n = math.prod(shape[:axis]), shape[axis]
        flat = x.reshape(lead, n, -1)
        return (M @ flat).reshape(*shape[:axis], M.shape[0], *shape[axis + 1:])
    moved = x.movedim(axis, -1)
    return (moved @ M.transpose(0, 1)).movedim(-1, axis)


def _coalesce(index: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Each column once per row (weights of repeats summed), ascending, zeros dropped to the end."""
    weight = weight.to(torch.float64)
    if index.shape[1] == 0:
        return torch.zeros(index.shape[0], 1, dtype=torch.long), torch.zeros(index.shape[0], 1, dtype=torch.float64)
    big = index.max().item() + 1 if index.numel() else 1
    key = torch.where(weight != 0, index, torch.full_like(index, big))  # zero weights sort last
    key, order = key.sort(dim=1)
    weight = weight.gather(1, order)
    new = torch.ones_like(key, dtype=torch.bool)
    new[:, 1:] = key[:, 1:] != key[:, :-1]
    group = new.long().cumsum(1) - 1
    out_w = torch.zeros_like(weight).scatter_add_(1, group, weight)
    out_i = torch.zeros_like(key).scatter_(1, group, key)
    valid = (out_i < big) & (out_w != 0)
    out_w = torch.where(valid, out_w, torch.zeros_like(out_w))
    out_i = torch.where(valid, out_i, torch.zeros_like(out_i))
    width = max(1, int(valid.sum(1).max())) if valid.numel() else 1
    # zeros (cancelled or padding) to the end of each row, then trim the common empty tail
    order = (~valid).long().argsort(dim=1, stable=True)
    return out_i.gather(1, order)[:, :width].contiguous(), out_w.gather(1, order)[:, :width].contiguous()
