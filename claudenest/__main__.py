from claudenest.cli.main import main

main()
