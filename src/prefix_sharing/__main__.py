from prefix_sharing.launcher import main

raise SystemExit(main())
