"""Logger: jsonl rows with step, CSV readable by pandas, truncation on resume."""
import json

import numpy as np
import pandas as pd

from safedreamer.run.logger import Logger, read_metrics


def test_rows_csv_and_tensorboard(tmp_path):
  logger = Logger(tmp_path)
  logger.write(10, {'episode/EpRet': np.float32(1.5), 'episode/EpCost': 2, 'skip': np.zeros(3)})
  logger.write(20, {'episode/CostRate': 0.25, 'nan': float('nan')})
  logger.close()
  rows = read_metrics(tmp_path / 'metrics.jsonl')
  assert rows == [{'step': 10, 'episode/EpRet': 1.5, 'episode/EpCost': 2},
                  {'step': 20, 'episode/CostRate': 0.25}]
  frame = pd.read_csv(tmp_path / 'progress.csv')
  assert list(frame['step']) == [10, 20]
  assert frame['episode/EpRet'][0] == 1.5 and np.isnan(frame['episode/EpRet'][1])
  assert any((tmp_path / 'tb').iterdir())


def test_resume_truncates_rows_written_after_the_checkpoint(tmp_path):
  logger = Logger(tmp_path)
  logger.write(1, {'a': 1})
  logger.write(2, {'a': 2})
  position = logger.position(2)
  logger.write(3, {'a': 3})  # written after the checkpoint, then the process dies
  logger.flush()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 4, "a"')  # torn line of a killed process
  logger = Logger(tmp_path, position=position)
  logger.write(3, {'a': 30})
  logger.close()
  rows = read_metrics(tmp_path / 'metrics.jsonl')
  assert [(r['step'], r['a']) for r in rows] == [(1, 1), (2, 2), (3, 30)]
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert all(json.loads(line) for line in lines)
