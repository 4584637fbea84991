"""Independent fleet generators: fleets built with other physics than ``refrig simulate``, to
check that the pipeline holds for any fleet that follows the contracts."""
