from pgpager.cli import main

main()
