from panopticon.cli import main

main()
