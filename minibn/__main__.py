from minibn.cli import main

main()
