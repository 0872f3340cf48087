from gencodec_cli.main import main

main()
