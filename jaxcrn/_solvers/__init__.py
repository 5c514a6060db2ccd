"""Integration methods, one file each, tableaus kept with them."""

from .rodas5p import Rodas5P as Rodas5P
