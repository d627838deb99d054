from prefix_sharing.cli import main

raise SystemExit(main())
