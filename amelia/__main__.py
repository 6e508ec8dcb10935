from amelia.entry import main

main()
