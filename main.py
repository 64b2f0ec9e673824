"""Entry script: python main.py [show-deps | say-hello --name NAME]."""

from my_project.cli import main

if __name__ == "__main__":
    main()
