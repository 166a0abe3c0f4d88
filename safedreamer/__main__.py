import sys
from safedreamer.cli import main
sys.exit(main())
