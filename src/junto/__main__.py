from junto.cli import main

raise SystemExit(main())
