from scicat_indexer.app import main

main()
