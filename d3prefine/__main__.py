from d3prefine.cli import main

main()
