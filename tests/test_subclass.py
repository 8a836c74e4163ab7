from dspy_meta._subclass import SubclassFactory


class Greeter:
    def __init__(self, name):
        self.name = name

    def greet(self):
        return f"hello {self.name}"


def test_copy_gets_the_subclass_and_the_original_is_untouched():
    loud = SubclassFactory(lambda base: {"greet": lambda self: base.greet(self).upper()})
    original = Greeter("ada")
    wrapped = loud.copy_of(original)
    assert wrapped.greet() == "HELLO ADA" and original.greet() == "hello ada"
    assert isinstance(wrapped, Greeter) and type(original) is Greeter
    assert loud.wraps(wrapped) and not loud.wraps(original)
    again = loud.copy_of(wrapped)  # wrapping twice does not stack subclasses
    assert type(again) is type(wrapped) and again.greet() == "HELLO ADA"
