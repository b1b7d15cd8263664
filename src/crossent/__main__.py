from crossent.cli import main

main()
