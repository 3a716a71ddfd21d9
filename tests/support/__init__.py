"""What the tests share: paths, loopback upstreams, real subprocesses, loaded data sets, fakes.

- `process`: free ports, real `cryptoetl serve` / `etl run` subprocesses, waiting;
- `upstream`: the loopback CoinGecko + CoinPaprika servers (`python -m tests.support.upstream`);
- `pipeline_fakes`: in-memory sources (test doubles of the upstream side only);
- `sourcing`: running one real source outside the pipeline;
- `api_data`, `assets_data`, `dashboard_data`: databases loaded through the real pipeline;
- `browser`, `html_tree`: headless Chromium and an HTML reader for the page tests;
- `deploy_files`: reading the Dockerfile, compose file and build context.
"""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
REPO = TESTS.parent
