"""Sequence replay: chunk files on disk, uniform windows, FIFO eviction, persistence."""
from safedreamer.replay.dataset import Dataset
from safedreamer.replay.replay import NotEnoughData, Replay

__all__ = ['Dataset', 'NotEnoughData', 'Replay']
