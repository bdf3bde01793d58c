from kcluster_cli.main import main

raise SystemExit(main())
