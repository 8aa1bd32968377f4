from mailvoice.cli import main

raise SystemExit(main())
